#!/usr/bin/env node
// Strongroom runs on Node.js 24+, which executes its TypeScript sources directly. Started by an
// older node (say the system's), this launcher re-runs the command with the Node 24 the package pins
// as a dev dependency (node_modules/node), forwarding arguments, signals and the exit code.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  const { main } = await import('../src/main/cli.ts');
  process.exitCode = await main(process.argv);
} else {
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(
      `strongroom needs Node.js 24 or newer (this is ${process.version}); run \`npm ci\` in the checkout first.\n`,
    );
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
