import type { Command } from 'commander';
import { runAttachmentMaintenance } from '../modules/attachments/attachment-maintenance.ts';
import { type CliContext, CliExit, withAuditedRuntime } from './cli-context.ts';
import { createProgressBar } from './progress.ts';

export function registerAttachmentCommands(program: Command, context: CliContext): void {
  const attachments = program.command('attachments').description('attachment storage housekeeping');

  attachments
    .command('maintain')
    .description(
      'purge attachment versions deleted or replaced longer ago than the restore window (STRONGROOM_RESTORE_WINDOW_DAYS), and delete objects no version knows (uploads cut off before their commit, older than an hour). Every server runs this every 10 minutes; one run at a time across all nodes.',
    )
    .option('--json', 'print the summary as JSON')
    .action(async (options: { json?: boolean }) => {
      const what = { action: 'attachments.maintain', resourceType: 'attachments' };
      const exitCode = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const bar = createProgressBar(context, 'maintaining attachments');
        let summary: Awaited<ReturnType<typeof runAttachmentMaintenance>>;
        try {
          summary = await runAttachmentMaintenance(
            {
              database: core.database,
              tenants: core.tenantRepository,
              attachments: core.attachments,
              records: core.records,
            },
            (done, total) => bar.update(done, total),
          );
        } finally {
          bar.stop();
        }
        if (options.json) {
          context.stdout(`${JSON.stringify(summary, null, 2)}\n`);
        } else {
          context.stdout(
            `${summary.tenants} tenants: ${summary.purged} retired versions purged, ${summary.orphansSwept} orphaned objects swept, ${summary.incompleteSwept} cut-off uploads removed, ${summary.idempotencyKeysPruned} expired idempotency keys forgotten\n`,
          );
          for (const failure of summary.failures)
            context.stdout(`  failed ${failure.tenantId}: ${failure.message}\n`);
        }
        if (summary.failures.length > 0) audit.failed('maintenance_incomplete');
        return summary.failures.length > 0 ? 1 : 0;
      });
      if (exitCode !== 0) throw new CliExit(exitCode);
    });
}
