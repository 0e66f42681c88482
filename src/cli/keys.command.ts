import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { commonErrors } from '../platform/errors.ts';
import { type CliContext, withAuditedRuntime } from './cli-context.ts';
import { createProgressBar } from './progress.ts';

export function registerKeysCommands(program: Command, context: CliContext): void {
  const keys = program.command('keys').description('master key and tenant data keys');

  keys
    .command('generate-master')
    .description('write a new random master key (32 bytes, hex) to a file with mode 0600')
    .requiredOption('--out <file>', 'where to write it; an existing file is never overwritten')
    .action(async (options: { out: string }) => {
      const path = resolve(options.out);
      try {
        writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw commonErrors.invalidRequest(
          code === 'EEXIST'
            ? `${path} exists; refusing to overwrite a key`
            : `cannot write ${path} (${code})`,
        );
      }
      context.stdout(`wrote a new master key to ${path}\n`);
    });

  keys
    .command('rotate-master')
    .description(
      "rewrap every tenant data key (and every staff member's TOTP secret) with the current master key (STRONGROOM_MASTER_KEY[_FILE]); keys still wrapped by STRONGROOM_PREVIOUS_MASTER_KEY[_FILE] are moved over. Online and resumable.",
    )
    .action(async () => {
      // The entry names no key, not even its id: the action and its outcome are what matter.
      const what = { action: 'keys.rotate_master', resourceType: 'master_key' };
      await withAuditedRuntime(context, what, async ({ core }) => {
        const bar = createProgressBar(context, 'rewrapping data keys');
        let result: { done: number; total: number };
        try {
          result = await core.keys.rotateMasterKey((p) => bar.update(p.done, p.total));
        } finally {
          bar.stop();
        }
        const staffSecrets = await core.staff.rewrapSecrets();
        if (staffSecrets > 0) context.stdout(`rewrapped ${staffSecrets} staff TOTP secrets\n`);
        context.stdout(
          result.total === 0
            ? `every data key is already wrapped by the current master key (${core.keys.currentKekId})\n`
            : `rewrapped ${result.done} of ${result.total} data keys with master key ${core.keys.currentKekId}; the previous master key can now be retired\n`,
        );
      });
    });
}
