import type { FastifyInstance, FastifyRequest } from 'fastify';
import { staffErrors } from '../../modules/staff/staff.errors.ts';
import type { StaffPrincipal, StaffService } from '../../modules/staff/staff.service.ts';
import { canStaff, type StaffAction } from '../../modules/staff/staff-permissions.ts';

declare module 'fastify' {
  interface FastifyRequest {
    staff?: StaffPrincipal;
  }
}

/**
 * Authenticates every request in the operator scope by its staff API key (`Authorization: Bearer
 * sro_…`), looked up by SHA-256. Keys are accepted only in the header, never in a query string,
 * where proxies and logs would keep them.
 */
export function registerStaffAuth(app: FastifyInstance, staff: StaffService): void {
  app.decorateRequest('staff', undefined);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header) : null;
    if (!match) throw staffErrors.unauthenticated();
    const principal = await staff.authenticate(match[1]!);
    if (!principal) throw staffErrors.unauthenticated();
    request.staff = principal;
  });
}

/** The staff principal of an authenticated request, if its role allows `action`; otherwise 403. */
export function requireStaff(request: FastifyRequest, action: StaffAction): StaffPrincipal {
  const principal = request.staff;
  if (!principal) throw staffErrors.unauthenticated();
  if (!canStaff(principal.role, action)) throw staffErrors.forbidden();
  return principal;
}
