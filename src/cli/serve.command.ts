import type { Command } from 'commander';
import { startServer } from '../main/server.ts';
import { createLogger } from '../platform/logger.ts';
import { type CliContext, loadCliConfig } from './cli-context.ts';

export function registerServeCommand(program: Command, context: CliContext): void {
  program
    .command('serve')
    .description(
      'run the HTTPS service (embedded defaults unless DATABASE_URL, STRONGROOM_OBJECTS, STRONGROOM_CACHE are set)',
    )
    .option('--host <host>', 'listen address (STRONGROOM_HOST, default 127.0.0.1)')
    .option('--port <port>', 'HTTPS port (STRONGROOM_PORT, default 8443)')
    .option(
      '--trust-proxy <addresses>',
      'run behind a TLS-terminating load balancer at these IPs/CIDRs (comma-separated): speak HTTP, require X-Forwarded-Proto: https from them',
    )
    .action(async (options: { host?: string; port?: string; trustProxy?: string }) => {
      const config = loadCliConfig({
        ...context,
        env: {
          ...context.env,
          ...(options.host ? { STRONGROOM_HOST: options.host } : {}),
          ...(options.port ? { STRONGROOM_PORT: options.port } : {}),
          ...(options.trustProxy ? { STRONGROOM_TRUST_PROXY: options.trustProxy } : {}),
        },
      });
      const log = createLogger({ level: config.log.level });
      const server = await startServer(config, log);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          server.shutdown(signal).then(resolve, (error) => {
            log.error({ err: error }, 'shutdown failed');
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
