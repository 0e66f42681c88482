import type { Command } from 'commander';
import { staffRoles } from '../modules/staff/staff.service.ts';
import { type CliContext, formatTable, withRuntime } from './cli-context.ts';

export function registerStaffCommands(program: Command, context: CliContext): void {
  const staff = program
    .command('staff')
    .description('platform staff (operators, support, security, developers)');

  staff
    .command('create')
    .description('create a staff member and their API key for the operator API (the key is shown once)')
    .requiredOption('--email <email>', 'their work email')
    .requiredOption('--name <name>', 'their display name')
    .requiredOption('--role <role>', `one of: ${staffRoles.join(', ')}`)
    .option('--json', 'print JSON instead of text')
    .action(async (options: { email: string; name: string; role: string; json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const created = await core.staff.create({
          email: options.email,
          displayName: options.name,
          role: options.role,
        });
        if (options.json) {
          context.stdout(`${JSON.stringify(created, null, 2)}\n`);
          return;
        }
        context.stdout(
          [
            `created ${created.staff.role} ${created.staff.email} (${created.staff.id})`,
            'API key (shown once; send it as "Authorization: Bearer <key>"):',
            `  ${created.apiKey}`,
            '',
          ].join('\n'),
        );
      });
    });

  staff
    .command('disable <email>')
    .description('disable a staff member: every key of theirs stops working at once')
    .action(async (email: string) => {
      await withRuntime(context, async ({ core }) => {
        await core.staff.disable(email);
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
