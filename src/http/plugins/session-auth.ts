import type { FastifyReply, FastifyRequest } from 'fastify';
import { identityErrors } from '../../modules/identity/identity.errors.ts';
import type { IdentityService, UserPrincipal } from '../../modules/identity/identity.service.ts';
import type { User } from '../../modules/identity/user.repository.ts';
import type { StaffService } from '../../modules/staff/staff.service.ts';
import type { SupportAccessService } from '../../modules/support/support-access.service.ts';
import { commonErrors, defineError } from '../../platform/errors.ts';
import type { AnyFastify } from '../error-handler.ts';

declare module 'fastify' {
  interface FastifyRequest {
    user?: { principal: UserPrincipal; user: User; viaCookie: boolean };
  }
}

export const sessionCookieName = 'strongroom_session';

/** What a user may still reach while their tenant requires MFA and they have not enrolled. */
const enrolmentRoutes = new Set([
  '/api/v1/me',
  '/api/v1/me/mfa',
  '/api/v1/me/mfa/confirm',
  '/api/v1/auth/logout',
  '/api/v1/auth/logout-everywhere',
]);

/**
 * The header a cookie-authenticated write must carry. Browsers only send a custom header cross-site
 * after a CORS preflight, which this server never grants, so its presence proves the request came
 * from our own pages (OWASP "custom request header" CSRF defence, on top of SameSite=Strict).
 */
export const csrfHeader = 'x-strongroom-csrf';

/** The header that names the support grant a staff key acts under (`X-Strongroom-Grant: <id>`). */
export const grantHeader = 'x-strongroom-grant';

/**
 * What a support grant can reach at all: tenant settings and one project's data. Personal routes
 * (me, MFA, API keys, sign-out) and tenant-wide lists never serve a grant, whatever the policy says;
 * within these, the policy decides by the grant's scope and access.
 */
function isGrantRoute(url: string | undefined): boolean {
  return url === '/api/v1/settings/security' || (url?.startsWith('/api/v1/projects/:projectId') ?? false);
}

export const sessionAuthErrors = {
  unauthenticated: commonErrors.unauthenticated,
  grantRoute: defineError(
    'support_grant_route_refused',
    'forbidden',
    'A support grant opens tenant settings and project data only; personal and tenant-wide routes are not for staff.',
  ),
  csrf: defineError(
    'csrf_check_failed',
    'forbidden',
    `A write authenticated by the session cookie must carry the ${csrfHeader} header.`,
  ),
};

/**
 * Authenticates every request in the tenant scope: a session token as `Authorization: Bearer srt_…`
 * or in the session cookie (never from the query string). Looked up by SHA-256.
 */
export function registerSessionAuth(
  app: AnyFastify,
  identity: IdentityService,
  grants?: { staff: StaffService; support: SupportAccessService },
): void {
  app.decorateRequest('user', undefined);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    const bearer =
      typeof header === 'string' ? /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header)?.[1] : undefined;
    const grantId = request.headers[grantHeader];
    if (grants && bearer?.startsWith('sro_') && typeof grantId === 'string') {
      // A staff key opens tenant data only under a grant the tenant approved, checked every request.
      const staff = await grants.staff.authenticate(bearer);
      if (!staff) throw sessionAuthErrors.unauthenticated();
      // Known from here on, so a refused grant is audited as this staff member's attempt.
      request.staff = staff;
      if (!isGrantRoute(request.routeOptions.url)) throw sessionAuthErrors.grantRoute();
      request.user = { ...(await grants.support.authenticateGrant(staff, grantId)), viaCookie: false };
      return;
    }
    // The cookie carries only session tokens; API keys travel as bearer tokens only.
    const fromCookie = bearer ? undefined : readCookie(request.headers.cookie, sessionCookieName);
    const cookie = fromCookie?.startsWith('srt_') ? fromCookie : undefined;
    const token = bearer ?? cookie;
    if (!token) throw sessionAuthErrors.unauthenticated();
    const found = await identity.authenticate(token);
    if (!found) throw sessionAuthErrors.unauthenticated();
    const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(request.method);
    if (cookie && unsafe && request.headers[csrfHeader] === undefined) throw sessionAuthErrors.csrf();
    if (found.principal.mfaEnrollmentRequired && !enrolmentRoutes.has(request.routeOptions.url ?? '')) {
      throw identityErrors.mfaEnrollmentRequired();
    }
    request.user = { ...found, viaCookie: cookie !== undefined };
  });
}

export function requireUser(request: FastifyRequest): { principal: UserPrincipal; user: User } {
  if (!request.user) throw sessionAuthErrors.unauthenticated();
  return request.user;
}

/** `HttpOnly; Secure; SameSite=Strict`: no script can read it, no other site can send it. */
export function setSessionCookie(reply: FastifyReply, token: string, expiresAt: Date): void {
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  reply.header(
    'set-cookie',
    `${sessionCookieName}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Strict`,
  );
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.header('set-cookie', `${sessionCookieName}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`);
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) {
      const value = rest.join('=');
      return /^[A-Za-z0-9_-]{1,200}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}
