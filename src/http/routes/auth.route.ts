import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { IdentityService, IssuedSession } from '../../modules/identity/identity.service.ts';
import type { MfaService } from '../../modules/identity/mfa.service.ts';
import type { ApiKey, User } from '../../modules/identity/user.repository.ts';
import { clearSessionCookie, requireUser, setSessionCookie } from '../plugins/session-auth.ts';
import { errorResponseSchema, errorResponses } from '../presenters.ts';

export const userSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  role: z.enum(['owner', 'admin', 'member']),
  status: z.enum(['invited', 'active', 'disabled']),
  createdAt: z.iso.datetime(),
});

export function presentUser(user: User): z.infer<typeof userSchema> {
  return {
    id: user.id,
    email: user.email,
    displayName: user.displayName,
    role: user.role,
    status: user.status,
    createdAt: user.createdAt.toISOString(),
  };
}

const signedIn = z.object({
  user: userSchema,
  session: z.object({ token: z.string(), expiresAt: z.iso.datetime() }),
});

/** Sets the session cookie and returns the body: the token goes to both, for browsers and API clients. */
function presentSignedIn(
  reply: FastifyReply,
  result: { user: User; session: IssuedSession },
): z.infer<typeof signedIn> {
  setSessionCookie(reply, result.session.token, result.session.expiresAt);
  return {
    user: presentUser(result.user),
    session: { token: result.session.token, expiresAt: result.session.expiresAt.toISOString() },
  };
}

const errors = errorResponses(400, 401, 403, 429);

/** A current authenticator code, and the recovery codes some routes return for it. */
const codeBody = z.strictObject({ code: z.string().max(20) });
const recoveryCodesResponse = {
  200: z.object({ recoveryCodes: z.array(z.string()) }),
  409: errorResponseSchema,
  ...errors,
};

/**
 * Signing in, for tenant users. Public: the only unauthenticated tenant routes. The session token is
 * returned in the body (for API clients, as a bearer token) and as an HttpOnly cookie (for browsers).
 */
export function authRoutes(deps: { identity: IdentityService }): FastifyPluginAsyncZod {
  return async (app) => {
    // Redeeming a one-time token (the owner's setup token, or an emailed invitation) by choosing a
    // name and password: the same request and answer, a different kind of token.
    const redemptions = [
      {
        url: '/auth/setup',
        summary: "Set up the owner's account with the one-time token from `tenant create`",
        redeem: (input: Parameters<IdentityService['setupOwner']>[0]) => deps.identity.setupOwner(input),
      },
      {
        url: '/auth/accept-invitation',
        summary: 'Accept an emailed invitation by choosing a password; signs the new user in',
        redeem: (input: Parameters<IdentityService['acceptInvitation']>[0]) =>
          deps.identity.acceptInvitation(input),
      },
    ];
    for (const { url, summary, redeem } of redemptions) {
      app.post(
        url,
        {
          schema: {
            summary,
            tags: ['auth'],
            body: z.strictObject({
              token: z.string().max(200),
              displayName: z.string().max(1000),
              password: z.string().max(4096),
            }),
            response: { 201: signedIn, ...errors },
          },
        },
        async (request, reply) => {
          const result = await redeem({
            ...request.body,
            sourceIp: request.ip,
            userAgent: request.headers['user-agent'] ?? '',
          });
          return reply.status(201).send(presentSignedIn(reply, result));
        },
      );
    }

    app.post(
      '/auth/login',
      {
        schema: {
          summary: 'Sign in with tenant slug, email and password',
          description:
            'Unknown tenant, unknown email, wrong password and a disabled account all answer 401 invalid_credentials.',
          tags: ['auth'],
          body: z.strictObject({
            tenant: z.string().max(200),
            email: z.string().max(1000),
            password: z.string().max(4096),
            totp: z
              .string()
              .max(20)
              .optional()
              .describe('The current 6-digit code, when the account has MFA'),
            recoveryCode: z
              .string()
              .max(40)
              .optional()
              .describe('A one-time recovery code instead of the TOTP code'),
          }),
          response: { 200: signedIn, ...errors },
        },
      },
      async (request, reply) => {
        const result = await deps.identity.login({
          ...request.body,
          sourceIp: request.ip,
          userAgent: request.headers['user-agent'] ?? '',
        });
        return presentSignedIn(reply, result);
      },
    );
  };
}

/** Routes for a signed-in user (the tenant scope's session authentication runs before these). */
export function sessionRoutes(deps: { identity: IdentityService; mfa: MfaService }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/me',
      {
        schema: {
          summary: 'The signed-in user',
          tags: ['auth'],
          security: [{ session: [] }],
          response: { 200: z.object({ user: userSchema, tenantId: z.uuid() }), ...errors },
        },
      },
      async (request) => {
        const { principal, user } = requireUser(request);
        return { user: presentUser(user), tenantId: principal.tenantId };
      },
    );

    app.post(
      '/me/mfa',
      {
        schema: {
          summary: 'Start two-factor enrolment: a TOTP secret and otpauth:// URI to scan (session only)',
          tags: ['auth'],
          security: [{ session: [] }],
          response: {
            200: z.object({ secret: z.string(), otpauthUri: z.string() }),
            409: errorResponseSchema,
            ...errors,
          },
        },
      },
      async (request) => {
        const { principal, user } = requireUser(request);
        return deps.mfa.enroll(principal, user.email);
      },
    );

    app.post(
      '/me/mfa/confirm',
      {
        schema: {
          summary:
            'Confirm enrolment with a current code; turns MFA on and returns 10 one-time recovery codes (shown once)',
          tags: ['auth'],
          security: [{ session: [] }],
          body: codeBody,
          response: recoveryCodesResponse,
        },
      },
      async (request) => deps.mfa.confirm(requireUser(request).principal, request.body.code),
    );

    app.post(
      '/me/mfa/recovery-codes',
      {
        schema: {
          summary:
            'Replace your recovery codes, proven with a current code; returns 10 new ones (shown once) and voids the old',
          tags: ['auth'],
          security: [{ session: [] }],
          body: codeBody,
          response: recoveryCodesResponse,
        },
      },
      async (request) => deps.mfa.regenerateRecoveryCodes(requireUser(request).principal, request.body.code),
    );

    const securitySettings = z.object({ mfaRequired: z.boolean() });
    app.get(
      '/settings/security',
      {
        schema: {
          summary: "The tenant's security settings (account owner or admin)",
          tags: ['settings'],
          security: [{ session: [] }],
          response: { 200: securitySettings, ...errors },
        },
      },
      async (request) => deps.identity.getSecuritySettings(requireUser(request).principal),
    );

    app.put(
      '/settings/security',
      {
        schema: {
          summary:
            'Make two-factor authentication mandatory for every account of the tenant, or not (account owner or admin)',
          tags: ['settings'],
          security: [{ session: [] }],
          body: z.strictObject({ mfaRequired: z.boolean() }),
          response: { 200: securitySettings, ...errors },
        },
      },
      async (request) => deps.identity.updateSecuritySettings(requireUser(request).principal, request.body),
    );

    app.get(
      '/users',
      {
        schema: {
          summary: "List the tenant's accounts (account owner or admin)",
          tags: ['users'],
          security: [{ session: [] }],
          response: { 200: z.object({ items: z.array(userSchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await deps.identity.listUsers(requireUser(request).principal)).map(presentUser),
      }),
    );

    app.post(
      '/users/invitations',
      {
        schema: {
          summary:
            'Invite a person by email (account owner or admin); the one-time token goes only to their inbox',
          tags: ['users'],
          security: [{ session: [] }],
          body: z.strictObject({
            email: z.string().max(1000),
            displayName: z.string().max(1000).optional(),
            role: z.enum(['admin', 'member']),
          }),
          response: { 201: userSchema, 409: errorResponseSchema, 503: errorResponseSchema, ...errors },
        },
      },
      async (request, reply) => {
        const user = await deps.identity.invite(requireUser(request).principal, request.body);
        return reply.status(201).send(presentUser(user));
      },
    );

    const userIdParams = z.strictObject({ userId: z.uuid() });

    app.patch(
      '/users/:userId',
      {
        schema: {
          summary:
            "Change another account's role or status (account owner or admin; owners only by an owner)",
          description:
            "Takes effect on that user's next request, on every node. `disabled` ends all their sessions and revokes all their API keys. Nobody changes their own account, and the tenant always keeps an active owner.",
          tags: ['users'],
          security: [{ session: [] }],
          params: userIdParams,
          body: z
            .strictObject({
              role: z.enum(['owner', 'admin', 'member']).optional(),
              status: z.enum(['active', 'disabled']).optional(),
            })
            .refine((b) => b.role !== undefined || b.status !== undefined, {
              message: 'give a role, a status or both',
            }),
          response: { 200: userSchema, 404: errorResponseSchema, 409: errorResponseSchema, ...errors },
        },
      },
      async (request) =>
        presentUser(
          await deps.identity.updateUser(requireUser(request).principal, request.params.userId, request.body),
        ),
    );

    app.delete(
      '/users/:userId/mfa',
      {
        schema: {
          summary:
            "Reset another account's two-factor authentication (account owner or admin; owners only by an owner)",
          description:
            'For a lost phone: erases their TOTP secret and recovery codes and ends their sessions; they sign in with their password and enrol again.',
          tags: ['users'],
          security: [{ session: [] }],
          params: userIdParams,
          response: { 204: z.null(), 404: errorResponseSchema, 409: errorResponseSchema, ...errors },
        },
      },
      async (request, reply) => {
        await deps.identity.resetMfa(requireUser(request).principal, request.params.userId);
        return reply.status(204).send(null);
      },
    );

    const apiKeySchema = z.object({
      id: z.uuid(),
      name: z.string(),
      prefix: z.string(),
      last4: z.string(),
      access: z.enum(['read', 'write']),
      projectIds: z.array(z.uuid()).nullable(),
      expiresAt: z.iso.datetime().nullable(),
      revokedAt: z.iso.datetime().nullable(),
      createdAt: z.iso.datetime(),
    });
    const presentKey = (k: ApiKey) => ({
      ...k,
      expiresAt: k.expiresAt?.toISOString() ?? null,
      revokedAt: k.revokedAt?.toISOString() ?? null,
      createdAt: k.createdAt.toISOString(),
    });

    app.post(
      '/api-keys',
      {
        schema: {
          summary: 'Create an API key for yourself (from a session only); the secret is shown once',
          description:
            '`read` keys may only read; `projectIds` limits a key to those projects. Send it as `Authorization: Bearer srk_…`, never in a URL.',
          tags: ['api keys'],
          security: [{ session: [] }],
          body: z.strictObject({
            name: z.string().max(200),
            access: z.enum(['read', 'write']),
            projectIds: z.array(z.uuid()).max(100).optional(),
            expiresAt: z.iso.datetime().optional(),
          }),
          response: { 201: z.object({ key: apiKeySchema, secret: z.string() }), ...errors },
        },
      },
      async (request, reply) => {
        const { expiresAt, ...rest } = request.body;
        const created = await deps.identity.createApiKey(requireUser(request).principal, {
          ...rest,
          ...(expiresAt ? { expiresAt: new Date(expiresAt) } : {}),
        });
        return reply.status(201).send({ key: presentKey(created.key), secret: created.secret });
      },
    );

    app.get(
      '/api-keys',
      {
        schema: {
          summary: 'List your API keys (never their secrets)',
          tags: ['api keys'],
          security: [{ session: [] }],
          response: { 200: z.object({ items: z.array(apiKeySchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await deps.identity.listApiKeys(requireUser(request).principal)).map(presentKey),
      }),
    );

    app.delete(
      '/api-keys/:keyId',
      {
        schema: {
          summary: 'Revoke one of your API keys, at once on every node',
          tags: ['api keys'],
          security: [{ session: [] }],
          params: z.strictObject({ keyId: z.uuid() }),
          response: { 204: z.null(), 404: errorResponseSchema, ...errors },
        },
      },
      async (request, reply) => {
        await deps.identity.revokeApiKey(requireUser(request).principal, request.params.keyId);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/auth/logout',
      {
        schema: {
          summary: 'End this session',
          tags: ['auth'],
          security: [{ session: [] }],
          response: { 204: z.null(), ...errors },
        },
      },
      async (request, reply) => {
        await deps.identity.logout(requireUser(request).principal);
        clearSessionCookie(reply);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/auth/logout-everywhere',
      {
        schema: {
          summary: 'End every session of the signed-in user, on every device',
          tags: ['auth'],
          security: [{ session: [] }],
          response: { 200: z.object({ ended: z.number().int() }), ...errors },
        },
      },
      async (request, reply) => {
        const ended = await deps.identity.logoutEverywhere(requireUser(request).principal);
        clearSessionCookie(reply);
        return { ended };
      },
    );
  };
}
