import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiCallMeter } from '../../modules/quotas/api-call-meter.ts';
import type { RequestLimiter } from '../../modules/quotas/request-limiter.ts';
import { isAppError } from '../../platform/errors.ts';
import type { AnyFastify } from '../error-handler.ts';
import type { HttpMetrics } from '../metrics.ts';
import { requireUser } from './session-auth.ts';

declare module 'fastify' {
  interface FastifyRequest {
    releaseTenantSlot?: () => void;
  }
}

/**
 * Admits each authenticated tenant request through its tenant's rate limit and concurrency cap
 * (429 `rate_limited` with Retry-After otherwise), meters it, and frees its slot when the answer
 * was sent or the client went away. Runs after authentication, so an unauthenticated flood is
 * refused by the authentication hook, and before any route work touches the database.
 */
export function registerTenantLimits(
  app: AnyFastify,
  deps: { limiter: RequestLimiter; meter: ApiCallMeter; metrics: HttpMetrics },
): void {
  app.decorateRequest('releaseTenantSlot', undefined);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const { tenantId } = requireUser(request).principal;
    try {
      const release = await deps.limiter.admit(tenantId);
      request.releaseTenantSlot = release;
      // Belt and braces: a response cut short (a failed stream, a reset socket) still frees the slot.
      reply.raw.once('close', release);
    } catch (error) {
      if (isAppError(error) && error.code === 'rate_limited') {
        deps.metrics.rateLimited(String(error.details?.reason ?? 'rate'));
      }
      throw error;
    }
    deps.meter.count(tenantId);
    deps.metrics.tenantCall(tenantId);
  });
  const release = async (request: FastifyRequest) => request.releaseTenantSlot?.();
  app.addHook('onResponse', release);
  app.addHook('onRequestAbort', release);
}
