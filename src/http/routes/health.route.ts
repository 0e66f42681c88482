import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** A named dependency check for /readyz; it rejects when the dependency cannot serve. */
export type ReadinessCheck = () => Promise<void>;

const checkTimeoutMs = 2_000;

/**
 * `/healthz`: the process is alive. `/readyz`: Postgres, the object store and the cache all answer,
 * and the server is not draining; a load balancer stops sending traffic on 503.
 */
export function healthRoutes(deps: {
  checks: Record<string, ReadinessCheck>;
  isDraining: () => boolean;
}): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'Liveness',
          tags: ['health'],
          response: { 200: z.object({ status: z.literal('ok') }) },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    const readiness = z.object({
      status: z.enum(['ready', 'not_ready', 'draining']),
      checks: z.record(z.string(), z.enum(['ok', 'failed', 'timeout'])),
    });
    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Readiness: every dependency reachable and not shutting down',
          tags: ['health'],
          response: { 200: readiness, 503: readiness },
        },
      },
      async (_request, reply) => {
        const names = Object.keys(deps.checks);
        const results = await Promise.all(names.map((name) => runCheck(deps.checks[name]!)));
        const checks = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
        const draining = deps.isDraining();
        const ready = !draining && results.every((r) => r === 'ok');
        return reply
          .status(ready ? 200 : 503)
          .send({ status: draining ? 'draining' : ready ? 'ready' : 'not_ready', checks });
      },
    );
  };
}

async function runCheck(check: ReadinessCheck): Promise<'ok' | 'failed' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), checkTimeoutMs);
  });
  try {
    return await Promise.race([check().then(() => 'ok' as const), timeout]);
  } catch {
    // The reason is the operator's business (logs), not the caller's: /readyz is unauthenticated.
    return 'failed';
  } finally {
    clearTimeout(timer);
  }
}
