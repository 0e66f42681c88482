import type { Command } from 'commander';
import type { AuditVerification } from '../modules/audit/audit.service.ts';
import { type CliContext, CliExit, withAuditedRuntime, withRuntime } from './cli-context.ts';
import { createProgressBar } from './progress.ts';

export function registerAuditCommands(program: Command, context: CliContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log');

  audit
    .command('verify')
    .description(
      "recompute a tenant's audit chain (or the platform's, with --platform) against its signed checkpoints in the database and in the object store; exits 1 and names the first bad position if anything was modified, deleted, inserted, reordered, truncated or rolled back",
    )
    .option('--tenant <tenant>', 'the tenant (slug or id)')
    .option('--platform', 'verify the platform chain (staff and control-plane events)')
    .option('--json', 'print the report as JSON')
    .action(async (options: { tenant?: string; platform?: boolean; json?: boolean }) => {
      if (!options.tenant === !options.platform) {
        context.stderr('error: give exactly one of --tenant <slug> or --platform\n');
        throw new CliExit(64);
      }
      const what = { action: 'audit.verify', resourceType: 'audit_log' };
      const exitCode = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const tenantId = options.tenant ? (await core.tenants.get(options.tenant)).id : null;
        audit.resource('audit_log', tenantId, tenantId);
        const bar = createProgressBar(context, 'verifying the audit chain');
        let report: AuditVerification;
        try {
          report = await core.audit.verify(tenantId, (done, total) => bar.update(done, total));
        } finally {
          bar.stop();
        }
        if (options.json) context.stdout(`${JSON.stringify(report, null, 2)}\n`);
        else if (report.ok)
          context.stdout(
            `ok: ${report.entries} entries, head ${report.head?.position ?? 0}, ${report.checkpoints.database} checkpoints in the database, ${report.checkpoints.objectStore} in the object store\n`,
          );
        else
          context.stdout(
            `BROKEN at position ${report.problem?.position} (${report.problem?.class}): ${report.problem?.message}\n`,
          );
        return report.ok ? 0 : 1;
      });
      if (exitCode !== 0) throw new CliExit(exitCode);
    });

  audit
    .command('checkpoint')
    .description(
      'seal the head of a chain with a signed checkpoint now (the server does this every N entries or minutes)',
    )
    .option('--tenant <tenant>', 'the tenant (slug or id)')
    .option('--platform', 'the platform chain')
    .action(async (options: { tenant?: string; platform?: boolean }) => {
      if (!options.tenant === !options.platform) {
        context.stderr('error: give exactly one of --tenant <slug> or --platform\n');
        throw new CliExit(64);
      }
      const what = { action: 'audit.checkpoint', resourceType: 'audit_log' };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const tenantId = options.tenant ? (await core.tenants.get(options.tenant)).id : null;
        audit.resource('audit_log', tenantId, tenantId);
        const sealed = await core.audit.checkpoint(tenantId, { force: true });
        context.stdout(
          sealed ? `sealed position ${sealed.position} (${sealed.headHash})\n` : 'nothing new to seal\n',
        );
      });
    });

  audit
    .command('retention')
    .description(
      "set a tenant's audit retention in days (default STRONGROOM_AUDIT_RETENTION_DAYS; never shorter than STRONGROOM_RESTORE_WINDOW_DAYS); older entries are pruned by whole sealed segments",
    )
    .requiredOption('--tenant <tenant>', 'the tenant (slug or id)')
    .requiredOption('--days <days>', 'how long entries are kept')
    .action(async (options: { tenant: string; days: string }) => {
      const what = { action: 'audit.retention.update', resourceType: 'audit_log', options };
      await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const tenant = await core.tenants.get(options.tenant);
        audit.resource('audit_log', tenant.id, tenant.id);
        await core.audit.setRetentionDays(tenant.id, Number(options.days));
        context.stdout(`${tenant.slug} keeps audit entries for ${Number(options.days)} days\n`);
      });
    });

  audit
    .command('public-key')
    .description('print the public key that verifies audit checkpoints (PEM)')
    .action(async () => {
      await withRuntime(context, async ({ core }) => {
        context.stdout(
          `${core.audit.signingKey.publicKeyPem.trim()}\n# key id ${core.audit.signingKey.keyId}\n`,
        );
      });
    });
}
