import { Command, CommanderError } from 'commander';
import { registerAttachmentCommands } from '../cli/attachments.command.ts';
import { registerAuditCommands } from '../cli/audit.command.ts';
import { registerBackupCommands, registerRestoreCommand } from '../cli/backup.command.ts';
import { type CliContext, reportError } from '../cli/cli-context.ts';
import { registerConfigCommands } from '../cli/config.command.ts';
import { registerKeysCommands } from '../cli/keys.command.ts';
import { registerMigrateCommand } from '../cli/migrate.command.ts';
import { registerServeCommand } from '../cli/serve.command.ts';
import { registerStaffCommands } from '../cli/staff.command.ts';
import { registerTenantCommands } from '../cli/tenant.command.ts';
import { registerUserCommands } from '../cli/user.command.ts';

/** The `strongroom` command line. Returns the exit code instead of exiting, so tests can run it. */
export async function main(argv: string[], context: CliContext = processContext()): Promise<number> {
  const program = new Command('strongroom')
    .description(
      'Strongroom: a multi-tenant secure data backend. Every command reads its configuration from the environment (see `strongroom config variables`).',
    )
    .showHelpAfterError('(add --help for usage)')
    // A command's options go before its subcommand (`restore` has options and `restore undo --tenant`).
    .enablePositionalOptions()
    .configureOutput({ writeOut: context.stdout, writeErr: context.stderr })
    .exitOverride();
  registerServeCommand(program, context);
  registerMigrateCommand(program, context);
  registerTenantCommands(program, context);
  registerStaffCommands(program, context);
  registerUserCommands(program, context);
  registerKeysCommands(program, context);
  registerAttachmentCommands(program, context);
  registerAuditCommands(program, context);
  registerBackupCommands(program, context);
  registerRestoreCommand(program, context);
  registerConfigCommands(program, context);
  for (const command of program.commands)
    command.exitOverride().configureOutput({ writeOut: context.stdout, writeErr: context.stderr });
  for (const group of program.commands) {
    for (const command of group.commands)
      command.exitOverride().configureOutput({ writeOut: context.stdout, writeErr: context.stderr });
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    // Commander already printed usage problems and help; just pass its exit code on.
    if (error instanceof CommanderError) return error.exitCode === 1 ? 2 : error.exitCode;
    return reportError(context, error);
  }
}

function processContext(): CliContext {
  return {
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    isInteractive: process.stderr.isTTY === true,
  };
}
