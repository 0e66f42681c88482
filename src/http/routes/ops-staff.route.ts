import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { StaffMember } from '../../modules/staff/staff.repository.ts';
import type { StaffService } from '../../modules/staff/staff.service.ts';
import { requireStaff } from '../plugins/staff-auth.ts';
import { errorResponses } from '../presenters.ts';

const errors = errorResponses(400, 401, 403, 404, 409);

const staffSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  role: z.enum(['operator', 'support', 'security', 'developer']),
  status: z.enum(['active', 'disabled']),
});
const present = (m: StaffMember) => ({
  id: m.id,
  email: m.email,
  displayName: m.displayName,
  role: m.role,
  status: m.status,
});
const setupSchema = z.object({
  staff: staffSchema,
  setupToken: z.string(),
  setupExpiresAt: z.iso.datetime(),
});
const code = z.string().max(20).describe('A current 6-digit code from the authenticator');

/**
 * Enrolment, public: a new staff member redeems the setup token an operator gave them, scans the
 * secret and confirms with a current code, and receives their first API key. Nothing else in the
 * operator API works without a key, and no key exists before MFA is confirmed.
 */
export function opsStaffSetupRoutes(deps: { staff: StaffService }): FastifyPluginAsyncZod {
  return async (app) => {
    const token = z.string().min(1).max(200);
    app.post(
      '/staff/setup',
      {
        schema: {
          summary:
            'Staff enrolment, step 1: the TOTP secret for your authenticator (public, needs the setup token)',
          tags: ['operator'],
          body: z.strictObject({ token }),
          response: { 200: z.object({ secret: z.string(), otpauthUri: z.string() }), ...errors },
        },
      },
      async (request) => deps.staff.beginSetup(request.body.token),
    );

    app.post(
      '/staff/setup/confirm',
      {
        schema: {
          summary:
            'Staff enrolment, step 2: confirm with a current code; returns your first API key (shown once)',
          tags: ['operator'],
          body: z.strictObject({ token, code, keyName: z.string().max(200).optional() }),
          response: { 201: z.object({ apiKey: z.string() }), ...errors },
        },
      },
      async (request, reply) => {
        const { token: setupToken, code: totp, keyName } = request.body;
        return reply.status(201).send(await deps.staff.completeSetup(setupToken, totp, keyName));
      },
    );
  };
}

/** Staff accounts for staff: the same operations as `strongroom staff …`, plus step-up key issuance. */
export function opsStaffRoutes(deps: { staff: StaffService }): FastifyPluginAsyncZod {
  const { staff } = deps;
  return async (app) => {
    app.post(
      '/staff/keys',
      {
        schema: {
          summary: 'Another API key for yourself, proven with a current authenticator code (shown once)',
          tags: ['operator'],
          body: z.strictObject({
            name: z.string().max(200),
            code,
            expiresAt: z.iso.datetime().optional(),
          }),
          response: {
            201: z.object({ id: z.uuid(), apiKey: z.string(), expiresAt: z.iso.datetime().nullable() }),
            ...errors,
          },
        },
      },
      async (request, reply) => {
        const principal = request.staff!;
        const { expiresAt, ...rest } = request.body;
        const created = await staff.createKey(principal, {
          ...rest,
          ...(expiresAt ? { expiresAt: new Date(expiresAt) } : {}),
        });
        return reply
          .status(201)
          .send({ ...created, expiresAt: created.expiresAt ? created.expiresAt.toISOString() : null });
      },
    );

    app.get(
      '/staff',
      {
        schema: {
          summary: 'List staff members',
          tags: ['operator'],
          response: { 200: z.object({ items: z.array(staffSchema) }), ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'staff.read');
        return { items: (await staff.list()).map(present) };
      },
    );

    app.post(
      '/staff',
      {
        schema: {
          summary: 'Create a staff member; returns their one-time setup token (shown once)',
          tags: ['operator'],
          body: z.strictObject({
            email: z.string().max(1000),
            displayName: z.string().max(1000),
            role: z.enum(['operator', 'support', 'security', 'developer']),
          }),
          response: { 201: setupSchema, ...errors },
        },
      },
      async (request, reply) => {
        requireStaff(request, 'staff.manage');
        const created = await staff.create(request.body);
        return reply.status(201).send({
          staff: present(created.staff),
          setupToken: created.setupToken,
          setupExpiresAt: created.setupExpiresAt.toISOString(),
        });
      },
    );

    app.post(
      '/staff/disable',
      {
        schema: {
          summary: 'Disable a staff member: every key of theirs stops working at once',
          tags: ['operator'],
          body: z.strictObject({ email: z.string().max(1000) }),
          response: { 204: z.null(), ...errors },
        },
      },
      async (request, reply) => {
        requireStaff(request, 'staff.manage');
        await staff.disable(request.body.email);
        return reply.status(204).send(null);
      },
    );
  };
}
