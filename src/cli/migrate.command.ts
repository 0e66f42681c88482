import type { Command } from 'commander';
import { commonErrors } from '../platform/errors.ts';
import { type CliContext, CliExit, withAuditedRuntime } from './cli-context.ts';
import { createProgressBar } from './progress.ts';

export function registerMigrateCommand(program: Command, context: CliContext): void {
  program
    .command('migrate')
    .description(
      'bring the control plane, then every tenant schema, to the latest version: canary batch first, then batches with bounded concurrency; resumable, safe while serving',
    )
    .option('--batch-size <n>', 'tenants per batch (default STRONGROOM_MIGRATE_BATCH_SIZE or 50)')
    .option('--concurrency <n>', 'tenants migrated at once (default STRONGROOM_MIGRATE_CONCURRENCY or 4)')
    .option('--canary <n>', 'tenants migrated first; a failure among them stops the run (default 5)')
    .option('--json', 'print the summary as JSON')
    .action(
      async (options: { batchSize?: string; concurrency?: string; canary?: string; json?: boolean }) => {
        const what = { action: 'platform.migrate', resourceType: 'tenants', options };
        const exitCode = await withAuditedRuntime(context, what, async ({ core }, config, _log, audit) => {
          // Opening the runtime already brought the control plane up to date.
          const bar = createProgressBar(context, 'migrating tenants');
          let summary: Awaited<ReturnType<typeof core.fleet.run>>;
          try {
            summary = await core.fleet.run({
              batchSize: positive(options.batchSize, config.migrate.batchSize, '--batch-size'),
              concurrency: positive(options.concurrency, config.migrate.concurrency, '--concurrency'),
              canarySize: nonNegative(options.canary, config.migrate.canarySize, '--canary'),
              onProgress: (p) =>
                bar.update(
                  p.migrated + p.failed,
                  p.total,
                  `${p.phase}${p.failed ? `, ${p.failed} failed` : ''}`,
                ),
            });
          } finally {
            bar.stop();
          }
          if (options.json) {
            context.stdout(`${JSON.stringify(summary, null, 2)}\n`);
          } else {
            const lines = [
              `control plane up to date; tenants: ${summary.migrated} migrated, ${summary.failed} failed, ${summary.skipped} not attempted, of ${summary.total} needing migration (target ${summary.target ?? 'none'})`,
            ];
            if (summary.abortReason) lines.push(`stopped: ${summary.abortReason}`);
            for (const failure of summary.failures)
              lines.push(`  failed ${failure.slug} (${failure.tenantId}): ${failure.error}`);
            if (summary.failed > 0 || summary.abortReason) {
              lines.push(
                'fix the cause and run `strongroom migrate` again: it continues with the tenants not yet migrated',
              );
            }
            context.stdout(`${lines.join('\n')}\n`);
          }
          if (summary.status !== 'succeeded') audit.failed('migration_incomplete');
          return summary.status === 'succeeded' ? 0 : 1;
        });
        if (exitCode !== 0) throw new CliExit(exitCode);
      },
    );
}

function positive(value: string | undefined, fallback: number, flag: string): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw commonErrors.invalidRequest(`${flag} must be a whole number of at least 1`);
  return n;
}

function nonNegative(value: string | undefined, fallback: number, flag: string): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw commonErrors.invalidRequest(`${flag} must be a whole number of at least 0`);
  return n;
}
