import type { Command } from 'commander';
import { listConfigVariables } from '../config/config.ts';
import { type CliContext, loadCliConfig } from './cli-context.ts';

export function registerConfigCommands(program: Command, context: CliContext): void {
  const config = program.command('config').description('inspect configuration');

  config
    .command('check')
    .description('validate the environment and print the effective configuration (secrets redacted)')
    .action(() => {
      const loaded = loadCliConfig(context);
      context.stdout(`${JSON.stringify(loaded, null, 2)}\n`);
    });

  config
    .command('variables')
    .description('list every environment variable Strongroom reads')
    .action(() => {
      context.stdout(`${listConfigVariables().join('\n')}\n`);
    });
}
