import type { Command } from 'commander';
import { type CreatedStaff, staffRoles } from '../modules/staff/staff.service.ts';
import { type CliContext, formatTable, withAuditedRuntime, withRuntime } from './cli-context.ts';

export function registerStaffCommands(program: Command, context: CliContext): void {
  const staff = program
    .command('staff')
    .description('platform staff (operators, support, security, developers)');

  staff
    .command('create')
    .description(
      'create a staff member; prints their one-time setup token (72 h), with which they enrol an authenticator (MFA is mandatory) and get their API key',
    )
    .requiredOption('--email <email>', 'their work email')
    .requiredOption('--name <name>', 'their display name')
    .requiredOption('--role <role>', `one of: ${staffRoles.join(', ')}`)
    .option('--json', 'print JSON instead of text')
    .action(async (options: { email: string; name: string; role: string; json?: boolean }) => {
      const what = { action: 'staff.create', resourceType: 'staff', options };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const created = await core.staff.create({
          email: options.email,
          displayName: options.name,
          role: options.role,
        });
        audit.resource('staff', created.staff.id);
        printSetup(context, created, 'created', options.json);
      });
    });

  staff
    .command('reset-mfa <email>')
    .description(
      'for a lost authenticator: turns their MFA off, revokes every key of theirs at once, and prints a new setup token',
    )
    .option('--json', 'print JSON instead of text')
    .action(async (email: string, options: { json?: boolean }) => {
      const what = { action: 'staff.reset_mfa', resourceType: 'staff' };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const reset = await core.staff.resetMfa(email);
        audit.resource('staff', reset.staff.id);
        printSetup(context, reset, 'reset', options.json);
      });
    });

  staff
    .command('disable <email>')
    .description('disable a staff member: every key of theirs stops working at once')
    .action(async (email: string) => {
      const what = { action: 'staff.disable', resourceType: 'staff' };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        audit.resource('staff', await core.staff.disable(email));
        context.stdout(`disabled ${email.toLowerCase()}\n`);
      });
    });

  staff
    .command('list')
    .description('list staff members')
    .option('--json', 'print JSON instead of text')
    .action(async (options: { json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const members = await core.staff.list();
        if (options.json) context.stdout(`${JSON.stringify(members, null, 2)}\n`);
        else
          context.stdout(
            formatTable(
              ['EMAIL', 'ROLE', 'STATUS', 'NAME'],
              members.map((m) => [m.email, m.role, m.status, m.displayName]),
            ),
          );
      });
    });
}

function printSetup(context: CliContext, created: CreatedStaff, verb: string, json?: boolean): void {
  if (json) {
    context.stdout(`${JSON.stringify(created, null, 2)}\n`);
    return;
  }
  context.stdout(
    [
      `${verb} ${created.staff.role} ${created.staff.email} (${created.staff.id})`,
      `Setup token (shown once, valid until ${created.setupExpiresAt.toISOString()}); give it to them privately:`,
      `  ${created.setupToken}`,
      'They enrol an authenticator and receive their API key with:',
      '  POST /api/v1/ops/staff/setup          {"token": "<setup token>"}           -> secret, otpauth URI',
      '  POST /api/v1/ops/staff/setup/confirm  {"token": "<setup token>", "code": "<6 digits>"} -> API key',
      '',
    ].join('\n'),
  );
}
