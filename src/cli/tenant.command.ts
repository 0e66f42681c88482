import { type Command, Option } from 'commander';
import type { Tenant } from '../modules/tenants/tenant.repository.ts';
import { type CliContext, formatTable, withAuditedRuntime, withRuntime } from './cli-context.ts';

function describeTenant(t: Tenant): string[] {
  return [t.slug, t.id, t.status, t.name ?? '', t.schemaVersion ?? '-', t.migrationStatus];
}

const json = new Option('--json', 'print JSON instead of text');

export function registerTenantCommands(program: Command, context: CliContext): void {
  const tenant = program
    .command('tenant')
    .description('create, list, suspend, resume and delete tenants (customer accounts)');

  tenant
    .command('create')
    .description(
      "create a tenant with its own schema, role and data key; prints the owner's one-time setup token",
    )
    .requiredOption('--slug <slug>', '3-40 characters of a-z, 0-9 and -, unique')
    .requiredOption('--name <name>', 'display name, e.g. "Acme Ltd"')
    .requiredOption('--owner-email <email>', "the primary account holder's email")
    .addOption(json)
    .action(async (options: { slug: string; name: string; ownerEmail: string; json?: boolean }) => {
      const what = { action: 'tenants.create', resourceType: 'tenants', options };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const created = await core.tenants.create(options);
        audit.resource('tenants', created.tenant.id, created.tenant.id);
        if (options.json) {
          context.stdout(`${JSON.stringify(created, null, 2)}\n`);
          return;
        }
        context.stdout(
          [
            `created tenant ${created.tenant.slug} (${created.tenant.id})`,
            `owner setup token for ${options.ownerEmail.toLowerCase()} (shown once, valid until ${created.ownerSetupExpiresAt.toISOString()}):`,
            `  ${created.ownerSetupToken}`,
            '',
          ].join('\n'),
        );
      });
    });

  tenant
    .command('list')
    .description('list tenants')
    .option('--all', 'include deleted tenants (tombstones)')
    .option('--limit <n>', 'at most this many', '1000')
    .addOption(json)
    .action(async (options: { all?: boolean; limit: string; json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const tenants = await core.tenants.list({
          includeDeleted: options.all ?? false,
          limit: Number(options.limit) || 1000,
        });
        if (options.json) context.stdout(`${JSON.stringify(tenants, null, 2)}\n`);
        else if (tenants.length === 0)
          context.stdout('no tenants yet: create one with `strongroom tenant create`\n');
        else
          context.stdout(
            formatTable(['SLUG', 'ID', 'STATUS', 'NAME', 'SCHEMA', 'MIGRATION'], tenants.map(describeTenant)),
          );
      });
    });

  tenant
    .command('show <tenant>')
    .description('show one tenant (by slug or id)')
    .addOption(json)
    .action(async (idOrSlug: string, options: { json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const found = await core.tenants.get(idOrSlug);
        if (options.json) context.stdout(`${JSON.stringify(found, null, 2)}\n`);
        else
          context.stdout(
            formatTable(['SLUG', 'ID', 'STATUS', 'NAME', 'SCHEMA', 'MIGRATION'], [describeTenant(found)]),
          );
      });
    });

  for (const action of ['suspend', 'resume'] as const) {
    tenant
      .command(`${action} <tenant>`)
      .description(
        action === 'suspend'
          ? 'suspend a tenant (by slug or id): its data stays, its users cannot use it'
          : 'resume a suspended tenant',
      )
      .action(async (idOrSlug: string) => {
        const what = { action: `tenants.${action}`, resourceType: 'tenants' };
        await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
          const changed =
            action === 'suspend' ? await core.tenants.suspend(idOrSlug) : await core.tenants.resume(idOrSlug);
          audit.resource('tenants', changed.id, changed.id);
          context.stdout(`${changed.slug} is now ${changed.status}\n`);
        });
      });
  }

  tenant
    .command('delete <tenant>')
    .description('delete a tenant for good: drops its schema and role and destroys its data key')
    .option('--confirm <slug>', "the tenant's slug, to confirm")
    .action(async (idOrSlug: string, options: { confirm?: string }) => {
      const what = { action: 'tenants.delete', resourceType: 'tenants', options };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const deleted = await core.tenants.delete(idOrSlug, options.confirm);
        audit.resource('tenants', deleted.id, deleted.id);
        context.stdout(`deleted tenant ${deleted.slug} (${deleted.id}); its data key is destroyed\n`);
      });
    });
}
