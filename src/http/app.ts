import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import swagger from '@fastify/swagger';
import Fastify from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { AttachmentService } from '../modules/attachments/attachment.service.ts';
import type { AuditService } from '../modules/audit/audit.service.ts';
import type { BackupService } from '../modules/backups/backup.service.ts';
import type { RestoreJobs } from '../modules/backups/restore-jobs.ts';
import type { IdentityService } from '../modules/identity/identity.service.ts';
import type { MfaService } from '../modules/identity/mfa.service.ts';
import type { ProjectService } from '../modules/projects/project.service.ts';
import type { ApiCallMeter } from '../modules/quotas/api-call-meter.ts';
import type { QuotaService } from '../modules/quotas/quota.service.ts';
import type { RequestLimiter } from '../modules/quotas/request-limiter.ts';
import type { CollectionPolicyService } from '../modules/records/collection-policy.service.ts';
import type { RecordService } from '../modules/records/record.service.ts';
import type { StaffService } from '../modules/staff/staff.service.ts';
import type { SupportAccessService } from '../modules/support/support-access.service.ts';
import type { TenantService } from '../modules/tenants/tenant.service.ts';
import type { Logger } from '../platform/logger.ts';
import {
  type AnyFastify,
  handleFrameworkError,
  httpErrors,
  registerErrorHandling,
  sendError,
} from './error-handler.ts';
import { refusePlainHttp } from './https-only.ts';
import { findDuplicateKey } from './json-body.ts';
import { HttpMetrics } from './metrics.ts';
import { registerAuditRequests } from './plugins/audit-requests.ts';
import { securityHeaders } from './plugins/security-headers.ts';
import { registerSessionAuth } from './plugins/session-auth.ts';
import { registerStaffAuth, requireStaff } from './plugins/staff-auth.ts';
import { registerTenantLimits } from './plugins/tenant-limits.ts';
import { errorResponses } from './presenters.ts';
import { accessRequestRoutes, opsAccessRequestRoutes } from './routes/access-requests.route.ts';
import { attachmentRoutes } from './routes/attachments.route.ts';
import { auditRoutes } from './routes/audit.route.ts';
import { authRoutes, sessionRoutes } from './routes/auth.route.ts';
import { collectionPolicyRoutes } from './routes/collection-policies.route.ts';
import { healthRoutes, type ReadinessCheck } from './routes/health.route.ts';
import { opsStaffRoutes, opsStaffSetupRoutes } from './routes/ops-staff.route.ts';
import { opsTenantRoutes } from './routes/ops-tenants.route.ts';
import { projectRoutes } from './routes/projects.route.ts';
import { recordRoutes } from './routes/records.route.ts';
import { opsRestoreRoutes, restoreRoutes } from './routes/restores.route.ts';
import { opsUsageRoutes, usageRoutes } from './routes/usage.route.ts';

/** The built app; its server type depends on whether TLS is on, so it is left open here. */
export type App = AnyFastify;

export interface AppDeps {
  tenants: TenantService;
  staff: StaffService;
  identity: IdentityService;
  mfa: MfaService;
  projects: ProjectService;
  records: RecordService;
  attachments: AttachmentService;
  policies: CollectionPolicyService;
  quotas: QuotaService;
  limiter: RequestLimiter;
  meter: ApiCallMeter;
  support: SupportAccessService;
  audit: AuditService;
  backups: BackupService;
  restoreJobs: RestoreJobs;
  readinessChecks: Record<string, ReadinessCheck>;
  /** True once shutdown began: /readyz turns 503 and new requests are refused. */
  isDraining: () => boolean;
  logger?: Logger;
}

export interface AppOptions {
  bodyLimitBytes: number;
  /** TLS material; the server speaks HTTPS (TLS 1.2+) when given. */
  https?: SecureContextOptions;
  /**
   * Addresses of the load balancer that terminated TLS. Then the app itself speaks HTTP, trusts
   * X-Forwarded-* only from those hops, and requires X-Forwarded-Proto: https on every request.
   */
  trustProxy?: string[];
  /** The public HTTPS port, for redirects of plain-HTTP page requests. */
  httpsPort?: number;
}

/**
 * Builds the HTTP application from its dependencies; `server.ts` listens. Tests call
 * `buildApp(deps).inject()` without a socket.
 */
export async function buildApp(deps: AppDeps, options: AppOptions): Promise<App> {
  const app = Fastify({
    ...(options.https ? { https: { ...options.https, minVersion: 'TLSv1.2' as const } } : {}),
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    trustProxy: options.trustProxy ?? false,
    bodyLimit: options.bodyLimitBytes,
    // Ids are ours: a client-chosen request id could forge or collide in the logs.
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    requestTimeout: 60_000,
    connectionTimeout: 30_000,
    routerOptions: { maxParamLength: 200 },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    frameworkErrors: handleFrameworkError,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app, { bodyLimitBytes: options.bodyLimitBytes });

  // Bytes that are not UTF-8 are refused (decoding would silently replace them with U+FFFD); then
  // Fastify's JSON parser (which refuses __proto__ and constructor.prototype), then a refusal of any
  // object with a repeated key: JSON.parse would silently keep the last one.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, raw, done) => {
    if (!isUtf8(raw as Buffer)) return done(httpErrors.invalidUtf8(), undefined);
    const body = (raw as Buffer).toString('utf8');
    parseJson(request, body, (error, value) => {
      if (error) return done(error, undefined);
      const duplicate = findDuplicateKey(body);
      if (duplicate !== undefined) return done(httpErrors.duplicateJsonKey(duplicate), undefined);
      return done(null, value);
    });
  });

  const secured = securityHeaders({
    // The API serves JSON only: nothing may be framed, scripted or embedded from it.
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    // One year, subdomains included: once a browser has seen us over HTTPS it never tries HTTP.
    hsts: { maxAge: 31_536_000, includeSubDomains: true },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  });

  const metrics = new HttpMetrics();
  app.addHook('onResponse', async (request, reply) => {
    metrics.answered(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.headers(secured);
    reply.header('x-request-id', request.id);
    reply.header('cache-control', 'no-store');
    if (options.trustProxy && request.protocol !== 'https') {
      return refusePlainHttp(request, reply, options.httpsPort ?? 443);
    }
    if (deps.isDraining() && !request.url.startsWith('/readyz') && !request.url.startsWith('/healthz')) {
      reply.header('connection', 'close');
      return sendError(request, reply, httpErrors.draining());
    }
    return undefined;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Strongroom API',
        version: '1',
        description:
          'Multi-tenant secure data backend. Errors are `{error: {code, message, requestId}}` with stable codes (docs/errors.md).',
      },
      components: {
        securitySchemes: {
          staffKey: { type: 'http', scheme: 'bearer', description: 'Staff API key (sro_…)' },
          session: {
            type: 'http',
            scheme: 'bearer',
            description: 'Session token (srt_…) from /api/v1/auth/login, or the strongroom_session cookie',
          },
        },
      },
    },
    transform: jsonSchemaTransform,
  });

  await app.register(healthRoutes({ checks: deps.readinessChecks, isDraining: deps.isDraining }));
  // Staff enrolment is public (it needs the setup token); everything else in /ops needs a staff key.
  await app.register(opsStaffSetupRoutes({ staff: deps.staff }), { prefix: '/api/v1/ops' });
  await app.register(
    async (ops) => {
      // Audit first: a refused staff credential is audited too (on the platform chain).
      registerAuditRequests(ops, deps.audit, { platform: true, bodyLimitBytes: options.bodyLimitBytes });
      registerStaffAuth(ops, deps.staff);
      await ops.register(opsTenantRoutes({ tenants: deps.tenants }));
      await ops.register(opsStaffRoutes({ staff: deps.staff }));
      await ops.register(opsUsageRoutes({ quotas: deps.quotas, tenants: deps.tenants }));
      await ops.register(opsAccessRequestRoutes({ support: deps.support }));
      await ops.register(
        opsRestoreRoutes({ backups: deps.backups, tenants: deps.tenants, jobs: deps.restoreJobs }),
      );
    },
    { prefix: '/api/v1/ops' },
  );
  // Prometheus scrapes with a staff key of a role allowed `metrics.read` (operator, security).
  await app.register(async (scope) => {
    registerAuditRequests(scope, deps.audit, { platform: true, bodyLimitBytes: options.bodyLimitBytes });
    registerStaffAuth(scope, deps.staff);
    scope.get(
      '/metrics',
      { schema: { summary: 'Prometheus metrics (staff: operator, security)', tags: ['operator'] } },
      async (request, reply) => {
        requireStaff(request, 'metrics.read');
        reply.header('content-type', metrics.registry.contentType);
        return metrics.registry.metrics();
      },
    );
  });
  // Public tenant routes (sign-in), then the tenant scope: every route below needs a session.
  await app.register(
    async (publicScope) => {
      registerAuditRequests(publicScope, deps.audit, {
        platform: false,
        bodyLimitBytes: options.bodyLimitBytes,
      });
      await publicScope.register(authRoutes({ identity: deps.identity }));
    },
    { prefix: '/api/v1' },
  );
  await app.register(
    async (tenantScope) => {
      // Audit first: every request, refused credentials included, gets one entry.
      registerAuditRequests(tenantScope, deps.audit, {
        platform: false,
        bodyLimitBytes: options.bodyLimitBytes,
      });
      registerSessionAuth(tenantScope, deps.identity, { staff: deps.staff, support: deps.support });
      registerTenantLimits(tenantScope, { limiter: deps.limiter, meter: deps.meter, metrics });
      // Any route here may answer 429 (the tenant's rate or concurrency limit, with Retry-After) or
      // 503 (the shared cache, which authorization needs, is unreachable): every route documents both.
      tenantScope.addHook('onRoute', (route) => {
        route.schema ??= {};
        const { schema } = route;
        schema.response = { ...errorResponses(429, 503), ...(schema.response as object | undefined) };
      });
      await tenantScope.register(sessionRoutes({ identity: deps.identity, mfa: deps.mfa }));
      await tenantScope.register(projectRoutes({ projects: deps.projects }));
      await tenantScope.register(recordRoutes({ records: deps.records }));
      await tenantScope.register(attachmentRoutes({ attachments: deps.attachments }));
      await tenantScope.register(collectionPolicyRoutes({ policies: deps.policies }));
      await tenantScope.register(usageRoutes({ quotas: deps.quotas }));
      await tenantScope.register(accessRequestRoutes({ support: deps.support }));
      await tenantScope.register(restoreRoutes({ jobs: deps.restoreJobs }));
      await tenantScope.register(auditRoutes({ audit: deps.audit }));
    },
    { prefix: '/api/v1' },
  );
  // Restore jobs this node runs finish before the app closes (their completion is audited).
  app.addHook('onClose', async () => deps.restoreJobs.stop());
  // Reads, refusals and errors are written by the batch writer: flush it when the app closes.
  app.addHook('onClose', async () => deps.audit.flush());
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  return app;
}
