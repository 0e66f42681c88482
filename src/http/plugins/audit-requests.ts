import type { FastifyError, FastifyRequest } from 'fastify';
import type { AuditService } from '../../modules/audit/audit.service.ts';
import { type AuditRequestContext, runWithAuditContext } from '../../modules/audit/audit-context.ts';
import { isUuid } from '../../platform/ids.ts';
import { type AnyFastify, toAppError } from '../error-handler.ts';

declare module 'fastify' {
  interface FastifyRequest {
    audit?: AuditRequestContext;
  }
}

/**
 * One audit entry per request in a scope. The context is made before authentication (so a refused
 * credential is audited too), completed with the actor once authenticated, and the route handler
 * runs inside it: a write transaction below appends the entry before it commits. A request no
 * write audited (a read, a refusal, an error) is queued at the response for the batch writer.
 *
 * `platform`: staff routes, whose entries go to the platform chain (naming the tenant they touch).
 */
export function registerAuditRequests(
  app: AnyFastify,
  audit: AuditService,
  options: { platform: boolean; bodyLimitBytes: number },
): void {
  app.decorateRequest('audit', undefined);
  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function auditedHandler(this: unknown, request, reply) {
      const context = request.audit;
      if (!context) return handler.call(this as never, request, reply);
      return runWithAuditContext(context, () => handler.call(this as never, request, reply));
    };
  });
  // Callback hooks, not async ones: every request runs these, and each async hook costs a promise
  // and a turn of the microtask queue.
  app.addHook('onRequest', (request, _reply, done) => {
    const described = describeRoute(request.method, request.routeOptions.url ?? request.url, request.params);
    request.audit = {
      requestId: request.id,
      ip: request.ip ?? null,
      userAgent: truncate(request.headers['user-agent'], 500),
      ...described,
      changes: null,
      tenantId: null,
      tenantSlug: null,
      actor: { kind: 'anonymous', id: null, apiKeyId: null },
      grantId: null,
      audited: false,
      platform: options.platform,
      errorCode: null,
    };
    done();
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const context = request.audit;
    if (!context) return done();
    fillActor(request, context);
    context.changes = fieldNames(request.body);
    const body = request.body as Record<string, unknown> | undefined;
    // Sign-in names its tenant by slug; the batch writer resolves it to that tenant's chain.
    if (typeof body?.tenant === 'string' && body.tenant.length <= 200) context.tenantSlug = body.tenant;
    // Operator routes name a tenant by id or slug; the platform chain records ids only (a slug would
    // make the whole batch unwritable). A route that resolves a slug may set the id itself.
    const tenantParam = (request.params as Record<string, unknown> | undefined)?.tenantId;
    if (options.platform && typeof tenantParam === 'string' && isUuid(tenantParam))
      context.tenantId = tenantParam;
    done();
  });
  app.addHook('onError', (request, _reply, error, done) => {
    if (request.audit)
      request.audit.errorCode = toAppError(error as FastifyError, options.bodyLimitBytes).code;
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const context = request.audit;
    if (context) {
      fillActor(request, context);
      audit.recordRequest(context, reply.statusCode, context.errorCode);
    }
    done();
  });
}

function fillActor(request: FastifyRequest, context: AuditRequestContext): void {
  if (request.user) {
    const { principal } = request.user;
    context.tenantId = principal.tenantId;
    if (principal.grant) {
      // A staff member under a support grant: the staff member is the actor, in the tenant's chain.
      context.actor = { kind: 'staff', id: principal.grant.staffId, apiKeyId: principal.credentialId };
      context.grantId = principal.grant.id;
      return;
    }
    context.actor =
      principal.via === 'api_key'
        ? { kind: 'api_key', id: principal.userId, apiKeyId: principal.credentialId }
        : { kind: 'user', id: principal.userId, apiKeyId: null };
  } else if (request.staff) {
    context.actor = { kind: 'staff', id: request.staff.staffId, apiKeyId: request.staff.keyId };
  }
}

/**
 * The action and resource of a route, from its URL pattern: `GET /projects/:projectId/records/:recordId`
 * is `records.read` on `records` `<recordId>`; a collection URL lists (GET) or creates (POST) under
 * its parent. A few routes have names of their own (sign-in, MFA).
 */
export function describeRoute(
  method: string,
  url: string,
  params: unknown,
): { action: string; resourceType: string | null; resourceId: string | null } {
  const key = `${method} ${url}`;
  let shape = routeShapes.get(key);
  if (!shape) {
    shape = routeShape(method, url);
    // Route patterns are few; raw URLs (of unknown routes) are not, so the memo is bounded.
    if (routeShapes.size >= 1_000) routeShapes.clear();
    routeShapes.set(key, shape);
  }
  const value =
    shape.idParam === null ? undefined : (params as Record<string, unknown> | undefined)?.[shape.idParam];
  return {
    action: shape.action,
    resourceType: shape.resourceType,
    resourceId: typeof value === 'string' ? value.slice(0, 200) : null,
  };
}

interface RouteShape {
  action: string;
  resourceType: string | null;
  /** The URL parameter naming the resource (the last one in the pattern), if any. */
  idParam: string | null;
}

const routeShapes = new Map<string, RouteShape>();

function routeShape(method: string, url: string): RouteShape {
  const path = url.replace(/^\/api\/v1/, '').split('?')[0] ?? '';
  const named = namedActions[`${method} ${path}`];
  const segments = path.split('/').filter(Boolean);
  let resourceType: string | null = null;
  let idParam: string | null = null;
  let collection: string | null = null;
  let item = false;
  for (const segment of segments) {
    if (segment.startsWith(':')) {
      resourceType = collection;
      idParam = segment.slice(1);
      item = true;
    } else {
      collection = segment.replaceAll('-', '_');
      item = false;
    }
  }
  if (named) return { action: named, resourceType, idParam };
  const verb =
    method === 'GET' || method === 'HEAD'
      ? item
        ? 'read'
        : 'list'
      : method === 'POST'
        ? 'create'
        : method === 'DELETE'
          ? 'delete'
          : 'update';
  if (!item && resourceType === null) resourceType = collection;
  return { action: `${collection ?? 'api'}.${verb}`, resourceType, idParam };
}

const namedActions: Record<string, string> = {
  'POST /auth/login': 'auth.login',
  'POST /auth/logout': 'auth.logout',
  'POST /auth/logout-everywhere': 'auth.logout_everywhere',
  'POST /auth/setup': 'auth.owner_setup',
  'POST /auth/accept-invitation': 'auth.accept_invitation',
  'POST /me/mfa': 'auth.mfa.enroll',
  'POST /me/mfa/confirm': 'auth.mfa.confirm',
  'POST /me/mfa/recovery-codes': 'auth.mfa.recovery_codes',
  'DELETE /users/:userId/mfa': 'users.mfa.reset',
  'GET /audit': 'audit.list',
  'GET /audit/export': 'audit.export',
  'GET /audit/verify': 'audit.verify',
};

/**
 * The names of the fields a write sends, never their values: top-level keys, and one level into
 * `data` (record fields). Secrets sent in a body (passwords, codes) appear only as their field name.
 */
export function fieldNames(body: unknown): string[] | null {
  if (!body || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) return null;
  const names: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    if (key === 'data' && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const field of Object.keys(value)) names.push(`data.${field}`);
    } else names.push(key);
  }
  return names.length > 0
    ? names
        .slice(0, 200)
        .map((name) => name.slice(0, 200))
        .sort()
    : null;
}

function truncate(value: string | string[] | undefined, max: number): string | null {
  if (typeof value !== 'string') return null;
  return value.slice(0, max);
}
