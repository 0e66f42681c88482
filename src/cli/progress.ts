import cliProgress from 'cli-progress';
import type { CliContext } from './cli-context.ts';

export interface ProgressBar {
  update(done: number, total: number, label?: string): void;
  stop(): void;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise. */
export function createProgressBar(context: CliContext, title: string): ProgressBar {
  const bar = new cliProgress.SingleBar(
    {
      format: `${title} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} {label}`,
      // On a terminal cli-progress needs the real stream (it moves the cursor); otherwise plain lines.
      stream: context.isInteractive
        ? process.stderr
        : ({ write: (text: string) => context.stderr(text), isTTY: false } as unknown as NodeJS.WriteStream),
      noTTYOutput: !context.isInteractive,
      notTTYSchedule: 2_000,
      hideCursor: context.isInteractive,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label = '') {
      if (!started) {
        bar.start(total, done, { label });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, { label });
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
