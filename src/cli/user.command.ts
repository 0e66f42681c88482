import type { Command } from 'commander';
import { type CliContext, formatTable, withAuditedRuntime } from './cli-context.ts';

export function registerUserCommands(program: Command, context: CliContext): void {
  const user = program
    .command('user')
    .description("a tenant's accounts (run by an operator with database access)");

  user
    .command('list')
    .description("list a tenant's accounts: email, role, status (no secrets)")
    .requiredOption('--tenant <tenant>', 'the tenant, by slug or id')
    .option('--json', 'print JSON instead of text')
    .action(async (options: { tenant: string; json?: boolean }) => {
      // A read of a tenant's personal data by an operator: on the record like a change.
      const what = { action: 'users.list', resourceType: 'users' };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const tenant = await core.tenants.get(options.tenant);
        audit.resource('users', null, tenant.id);
        const users = await core.identity.listUsersForOperator(tenant.id);
        if (options.json) context.stdout(`${JSON.stringify(users, null, 2)}\n`);
        else if (users.length === 0)
          context.stdout('no accounts yet: the owner signs up with the setup token\n');
        else {
          context.stdout(
            formatTable(
              ['EMAIL', 'ROLE', 'STATUS', 'NAME', 'ID'],
              users.map((u) => [u.email, u.role, u.status, u.displayName, u.id]),
            ),
          );
        }
      });
    });
}
