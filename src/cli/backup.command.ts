import { type Command, Option } from 'commander';
import { tenantErrors } from '../modules/tenants/tenant.errors.ts';
import { type CliContext, CliExit, formatTable, withAuditedRuntime, withRuntime } from './cli-context.ts';
import { createProgressBar } from './progress.ts';

const json = new Option('--json', 'print JSON instead of text');

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function registerBackupCommands(program: Command, context: CliContext): void {
  const backup = program
    .command('backup')
    .description(
      'backups in every STRONGROOM_BACKUP_LOCATIONS location: ship the change journal, take snapshots, show status, verify',
    );

  registerDrillCommands(backup, context);

  backup
    .command('ship')
    .description(
      "seal every tenant's change journal into encrypted segments and write them to every location (the server does this every few seconds)",
    )
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const what = { action: 'backups.ship', resourceType: 'backups' };
      const failed = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const summary = await core.backups.ship();
        if (summary.failures.length > 0) audit.failed('backup_location_failed');
        if (options.json) context.stdout(`${JSON.stringify(summary, null, 2)}\n`);
        else {
          context.stdout(
            `${summary.tenants} tenants: ${summary.segmentsSealed} segments sealed, ${summary.segmentsShipped} copies written, ${summary.segmentsPruned} pruned from the journal, ${summary.objectsCopied} attachment files copied\n`,
          );
          for (const m of summary.objectsMissing)
            context.stdout(`  ${m.tenantId}: attachment ${m.objectKey} is missing from the object store\n`);
          for (const f of summary.failures)
            context.stdout(`  ${f.location} unreachable for ${f.tenantId}: ${f.message}\n`);
        }
        return summary.failures.length > 0;
      });
      if (failed) throw new CliExit(1);
    });

  backup
    .command('snapshot')
    .description('snapshot every tenant (or one) now: consistent, compressed, encrypted, to every location')
    .option('--tenant <slug>', 'only this tenant')
    .addOption(json)
    .action(async (options: { tenant?: string; json?: boolean }) => {
      const what = { action: 'backups.snapshot', resourceType: 'backups', options };
      const failed = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        let results: Awaited<ReturnType<typeof core.backups.snapshotAll>>;
        if (options.tenant) {
          const tenant = await core.tenants.get(options.tenant);
          if (tenant.status === 'deleted') throw tenantErrors.notFound();
          audit.resource('backups', null, tenant.id);
          results = [await core.backups.snapshotTenant(tenant.id)];
        } else {
          const bar = createProgressBar(context, 'snapshotting tenants');
          try {
            results = await core.backups.snapshotAll({
              onProgress: (done, total) => bar.update(done, total),
            });
          } finally {
            bar.stop();
          }
        }
        // With every tenant snapshotted, the control plane too: disaster recovery starts from it.
        const control = options.tenant ? undefined : await core.backups.snapshotControlPlane();
        if (options.json)
          context.stdout(`${JSON.stringify(control ? { tenants: results, control } : results, null, 2)}\n`);
        else {
          if (control)
            context.stdout(
              `control plane: snapshot ${control.snapshotId}, ${control.rowCount} rows, in ${control.storedIn.join(', ') || 'no location'}\n`,
            );
          for (const f of control?.failures ?? []) context.stdout(`  ${f.location} failed: ${f.message}\n`);
          for (const r of results) {
            context.stdout(
              `${r.tenantId}: snapshot ${r.snapshotId} at ${r.takenAt.toISOString()}, ${r.rowCount} rows, ${r.sealedBytes} bytes sealed, ${r.objectsCopied} attachment files copied, in ${r.storedIn.join(', ') || 'no location'}\n`,
            );
            for (const key of r.objectsMissing)
              context.stdout(`  attachment ${key} is missing from the object store\n`);
            for (const f of r.failures) context.stdout(`  ${f.location} failed: ${f.message}\n`);
          }
        }
        const someFailed = results.some((r) => r.failures.length > 0) || (control?.failures.length ?? 0) > 0;
        if (someFailed) audit.failed('backup_location_failed');
        return someFailed;
      });
      if (failed) throw new CliExit(1);
    });

  backup
    .command('status')
    .description(
      'per tenant and location: the newest snapshot, the last shipped journal segment, entries not shipped yet and the RPO (age of the oldest change a location lacks)',
    )
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const statuses = await core.backups.status();
        if (options.json) {
          context.stdout(
            `${JSON.stringify({ locations: core.backups.locations.map((l) => l.name), tenants: statuses }, null, 2)}\n`,
          );
          return;
        }
        const rows = statuses.flatMap((s) =>
          s.locations.map((l) => [
            s.slug,
            l.location,
            s.newestSnapshot?.storedIn.includes(l.location) ? s.newestSnapshot.takenAt : '-',
            l.lastSegmentNo === null ? '-' : String(l.lastSegmentNo),
            l.lastShippedChangeAt ?? '-',
            String(l.pendingEntries),
            seconds(l.rpoMs),
          ]),
        );
        context.stdout(
          formatTable(
            ['TENANT', 'LOCATION', 'SNAPSHOT', 'SEGMENT', 'LAST CHANGE SHIPPED', 'PENDING', 'RPO'],
            rows,
          ),
        );
      });
    });

  backup
    .command('prune')
    .description(
      'delete snapshots and journal segments no restore inside the window (STRONGROOM_RESTORE_WINDOW_DAYS) can need; never leaves a gap (the server does this after its snapshots)',
    )
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const what = { action: 'backups.prune', resourceType: 'backups' };
      const hasProblems = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const results = await core.backups.prune();
        if (options.json) context.stdout(`${JSON.stringify(results, null, 2)}\n`);
        else
          for (const r of results) {
            context.stdout(
              `${r.location}: ${r.snapshotsDeleted} snapshots, ${r.segmentsDeleted} journal segments and ${r.objectsDeleted} attachment copies deleted\n`,
            );
            for (const p of r.problems) context.stdout(`  ${p.key}: ${p.problem}\n`);
          }
        const problems = results.some((r) => r.problems.length > 0);
        if (problems) audit.failed('backup_prune_incomplete');
        return problems;
      });
      if (hasProblems) throw new CliExit(1);
    });

  backup
    .command('verify')
    .description(
      "check every file in every location: manifest, size and SHA-256, decryption and entry counts (where the tenant's key exists), and that journal segments have no gap. Exit 8 on any problem.",
    )
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      // It decrypts every tenant's backups to check them: on the record like a change.
      const what = { action: 'backups.verify', resourceType: 'backups' };
      const hasProblems = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
        const results = await core.backups.verify();
        if (options.json) context.stdout(`${JSON.stringify(results, null, 2)}\n`);
        else {
          for (const r of results) {
            context.stdout(
              `${r.location}: ${r.tenants} tenants, ${r.filesChecked} files checked, ${r.problems.length} problems${r.shreddedTenants.length > 0 ? `, ${r.shreddedTenants.length} tenants shredded (data key destroyed: unreadable by design)` : ''}\n`,
            );
            for (const p of r.problems) context.stdout(`  ${p.key}: ${p.problem}\n`);
            for (const t of r.shreddedTenants) context.stdout(`  shredded: ${t}\n`);
          }
        }
        const problems = results.some((r) => r.problems.length > 0);
        if (problems) audit.failed('backup_verification_failed');
        return problems;
      });
      if (hasProblems) throw new CliExit(8);
    });
}

/** `backup drill` and `backup drills`: run restore drills now, and list their results. */
function registerDrillCommands(backup: Command, context: CliContext): void {
  const print = (
    results: Array<{
      id: string;
      tenantId: string;
      restoreAt: string;
      outcome: string;
      message: string | null;
      startedAt: string;
    }>,
  ) =>
    formatTable(
      ['STARTED', 'TENANT', 'RESTORED TO', 'OUTCOME', 'MESSAGE'],
      results.map((r) => [r.startedAt, r.tenantId, r.restoreAt, r.outcome, r.message ?? '']),
    );
  backup
    .command('drill')
    .description(
      'restore a tenant (or a random sample) at a random instant of the window from every location into scratch schemas, compare them and record the result; exit 8 on a failed drill',
    )
    .option('--tenant <slug>', 'drill this tenant')
    .addOption(json)
    .action(async (options: { tenant?: string; json?: boolean }) => {
      // A drill restores tenants' data into scratch schemas: on the record like a restore.
      const what = { action: 'backups.drill', resourceType: 'backups', options };
      const failed = await withAuditedRuntime(context, what, async ({ core }, config, _log, audit) => {
        const results = await core.backups.drill(
          options.tenant ? { tenant: options.tenant } : { sample: config.backup.drillSample },
        );
        if (options.tenant) audit.resource('backups', null, results[0]?.tenantId ?? null);
        if (results.some((r) => r.outcome === 'failed')) audit.failed('backup_drill_failed');
        if (options.json) context.stdout(`${JSON.stringify(results, null, 2)}\n`);
        else context.stdout(print(results));
        return results.some((r) => r.outcome === 'failed');
      });
      if (failed) throw new CliExit(8);
    });
  backup
    .command('drills')
    .description('the newest restore drill results (scheduled and manual), newest first')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      await withRuntime(context, async ({ core }) => {
        const results = await core.backups.drills();
        if (options.json) context.stdout(`${JSON.stringify(results, null, 2)}\n`);
        else context.stdout(print(results));
      });
    });
}

export function registerRestoreCommand(program: Command, context: CliContext): void {
  // Positional options: `restore undo --tenant acme` is undo's --tenant, not restore's.
  const restore = program.command('restore').enablePositionalOptions();
  registerInPlaceFollowUps(restore, context);
  restore
    .description(
      'restore a tenant as it was at an instant (newest snapshot before it, plus the change journal) into a new tenant or, with --in-place, into itself (then `restore confirm` or `restore undo`), other tenants untouched; or, with --all, rebuild the control plane and every tenant onto an empty database from one location (disaster recovery, docs/disaster-recovery.md)',
    )
    .option('--tenant <slug>', 'the tenant to restore (its slug, or its id if deleted)')
    .option('--at <time>', 'the instant, ISO 8601 with a zone, e.g. 2026-11-20T14:03:12Z')
    .option('--into <slug>', 'slug of the new tenant the restored data is published as')
    .option(
      '--in-place',
      'swap the restored data in for the tenant itself (paused for a moment); its previous data is kept until `restore confirm` or `restore undo`',
    )
    .option('--name <name>', 'display name of the new tenant')
    .option(
      '--from <location>',
      'read only this backup location (default: the first that works; required with --all)',
    )
    .option(
      '--all',
      'disaster recovery: the control plane and every tenant, newest state, onto this empty database',
    )
    .addOption(json)
    .action(
      async (options: {
        tenant?: string;
        at?: string;
        into?: string;
        name?: string;
        from?: string;
        all?: boolean;
        inPlace?: boolean;
        json?: boolean;
      }) => {
        const usage = (message: string) => {
          context.stderr(`error [invalid_arguments]: ${message}\n`);
          return new CliExit(2);
        };
        if (options.all) {
          if (options.tenant || options.at || options.into || options.name || options.inPlace)
            throw usage('--all restores everything to its newest state: it takes only --from (and --json)');
          await recoverAll(context, options);
          return;
        }
        if (options.inPlace && (options.into || options.name))
          throw usage('--in-place restores the tenant itself: it takes no --into or --name');
        if (!options.tenant || !options.at || (!options.into && !options.inPlace))
          throw usage(
            'a tenant restore needs --tenant, --at and --into or --in-place (or --all --from <location>)',
          );
        const at = new Date(options.at);
        if (
          !/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(options.at) ||
          Number.isNaN(at.getTime())
        ) {
          context.stderr(
            'error [invalid_time]: --at must be an ISO 8601 time with a zone, e.g. 2026-11-20T14:03:12Z\n',
          );
          throw new CliExit(2);
        }
        const { tenant, into } = options;
        const what = { action: 'tenants.restore', resourceType: 'tenants', options };
        await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
          const bar = createProgressBar(context, 'restoring');
          let result: Awaited<ReturnType<typeof core.backups.restore>>;
          const common = {
            tenant,
            at,
            ...(options.from ? { from: options.from } : {}),
            onProgress: (done: number, total: number, label: string) => bar.update(done, total, label),
          };
          try {
            result = into
              ? await core.backups.restore({
                  ...common,
                  intoSlug: into,
                  ...(options.name ? { intoName: options.name } : {}),
                })
              : await core.backups.restoreInPlace(common);
          } finally {
            bar.stop();
          }
          audit.resource('tenants', result.tenant.id, result.tenant.id);
          if (options.json) {
            context.stdout(`${JSON.stringify(result, null, 2)}\n`);
            return;
          }
          context.stdout(
            [
              into
                ? `restored ${tenant} as of ${at.toISOString()} into new tenant ${result.tenant.slug} (${result.tenant.id})`
                : `restored ${tenant} in place as of ${at.toISOString()}; its previous data is kept: \`strongroom restore confirm --tenant ${tenant}\` drops it, \`strongroom restore undo --tenant ${tenant}\` swaps it back`,
              `  from ${result.location}: snapshot of ${result.snapshotTakenAt.toISOString()} (${result.rowsLoaded} rows) + ${result.entriesReplayed} journal entries from ${result.segmentsRead} segments, ${result.objectsRestored} attachment files${result.objectsFromLiveStore > 0 ? ` (${result.objectsFromLiveStore} of them from the attachment store: the location had no copy yet)` : ''}${result.objectsUnchanged > 0 ? ` (${result.objectsUnchanged} of them already intact in the attachment store: left as they were)` : ''}`,
              into
                ? `  the new tenant's first snapshot is in ${result.snapshot.storedIn.join(', ')}`
                : `  its snapshot after the swap is in ${result.snapshot.storedIn.join(', ')}`,
              '',
            ].join('\n'),
          );
        });
      },
    );
}

/** `restore confirm` and `restore undo`: what follows an in-place restore. */
function registerInPlaceFollowUps(restore: Command, context: CliContext): void {
  restore
    .command('confirm')
    .description('make an in-place restore final: drop the previous data it kept')
    .requiredOption('--tenant <slug>', 'the tenant restored in place')
    .action(async (options: { tenant: string }) => {
      await withRuntime(context, async ({ core }) => {
        await core.backups.confirmInPlaceRestore(options.tenant);
        context.stdout(`${options.tenant}: the in-place restore is final; the previous data was dropped\n`);
      });
    });
  restore
    .command('undo')
    .description(
      'swap the data an in-place restore kept back in (paused for a moment); changes made since the restore are discarded',
    )
    .requiredOption('--tenant <slug>', 'the tenant restored in place')
    .action(async (options: { tenant: string }) => {
      await withRuntime(context, async ({ core }) => {
        const result = await core.backups.undoInPlaceRestore(options.tenant);
        context.stdout(
          `${options.tenant}: the previous data is back; snapshot ${result.snapshot.snapshotId} in ${result.snapshot.storedIn.join(', ')}\n`,
        );
      });
    });
}

/** `restore --all --from <location>`: exit 1 when a tenant could not be recovered (the rest were). */
async function recoverAll(context: CliContext, options: { from?: string; json?: boolean }): Promise<void> {
  const what = { action: 'platform.recover', resourceType: 'tenants', options };
  const failed = await withAuditedRuntime(context, what, async ({ core }, _config, _log, audit) => {
    const bar = createProgressBar(context, 'recovering tenants');
    let result: Awaited<ReturnType<typeof core.backups.recoverAll>>;
    try {
      result = await core.backups.recoverAll({
        ...(options.from ? { from: options.from } : {}),
        onProgress: (done, total, label) => bar.update(done, total, label),
      });
    } catch (error) {
      if (await core.backups.isRecoveryTarget().catch(() => false))
        audit.skip('this database holds no platform yet, and the run changed nothing');
      throw error;
    } finally {
      bar.stop();
    }
    if (options.json) context.stdout(`${JSON.stringify(result, null, 2)}\n`);
    else {
      context.stdout(
        `recovered from ${result.location}: control plane of ${result.controlSnapshotTakenAt}${result.controlPlaneLoaded ? '' : ' (loaded by an earlier run)'}\n`,
      );
      context.stdout(
        formatTable(
          ['TENANT', 'ID', 'OUTCOME', 'ROWS', 'JOURNAL', 'FILES', 'MESSAGE'],
          result.tenants.map((t) => [
            t.slug ?? '-',
            t.tenantId,
            t.outcome,
            String(t.rowsLoaded ?? '-'),
            String(t.entriesReplayed ?? '-'),
            String(t.objectsRestored ?? '-'),
            t.message ?? '',
          ]),
        ),
      );
    }
    const someFailed = result.tenants.some((t) => t.outcome === 'failed');
    if (someFailed) audit.failed('recovery_incomplete');
    return someFailed;
  });
  if (failed) throw new CliExit(1);
}
