import type { FastifyReply, FastifyRequest } from 'fastify';
import { httpErrors, sendError } from './error-handler.ts';

/** Paths a load balancer probes over plain HTTP; everything else needs HTTPS. */
const probePaths = new Set(['/healthz', '/readyz']);

/**
 * What a request that arrived over plain HTTP gets. Browser pages are redirected to HTTPS; API
 * paths get 403 `https_required`: a silent redirect would have already sent the credentials in the
 * clear and teach clients to keep doing it. Returns undefined when the request may proceed.
 */
export function refusePlainHttp(
  request: FastifyRequest,
  reply: FastifyReply,
  httpsPort: number,
): FastifyReply | undefined {
  const path = request.url.split('?')[0] ?? '/';
  if (probePaths.has(path)) return undefined;
  if (path === '/api' || path.startsWith('/api/')) return sendError(request, reply, httpsErrors());
  const host = (request.hostname || 'localhost').replace(/:\d+$/, '');
  const port = httpsPort === 443 ? '' : `:${httpsPort}`;
  // Only GET/HEAD pages are redirected; anything else could lose a body on the way.
  if (request.method !== 'GET' && request.method !== 'HEAD') return sendError(request, reply, httpsErrors());
  return reply.redirect(`https://${host}${port}${request.url}`, 301);
}

function httpsErrors() {
  return httpErrors.httpsRequired();
}
