#!/usr/bin/env -S node --max-semi-space-size=2 --initial-old-space-size=64
// The `portage` command's entry point. It is plain JavaScript, not TypeScript, so that any Node
// can read it: Portage's sources run on Node 22.18 or newer, which strips their types itself.
// Started by an older Node, it hands over to the Node that `npm install` brought (the
// node-<platform>-<arch> package), or says in one sentence what to do: never a stack trace.
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const MINIMUM = [22, 18];
const [major, minor] = process.versions.node.split('.').map(Number);
const supported = major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1]);

if (supported) {
  // Node keeps V8's compiled code of the modules here, so a start after the first compiles less.
  // Without a writable folder Node just compiles as usual.
  module.enableCompileCache?.(fileURLToPath(new URL('../../../node_modules/.cache/portage', import.meta.url)));
  await import('../src/main.ts');
} else {
  const bundled = fileURLToPath(new URL('../../../node_modules/.bin/node', import.meta.url));
  if (existsSync(bundled) && realpathSync(bundled) !== realpathSync(process.execPath)) {
    const child = spawn(bundled, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: 'inherit',
    });
    // The child shares the terminal, so Ctrl-C reaches it directly; a signal sent to this
    // process alone (a service manager's SIGTERM) is passed on.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  } else {
    process.stderr.write(
      `Portage needs Node.js ${MINIMUM.join('.')} or newer and this is Node.js ${process.versions.node}: ` +
        'run `npm install` in the Portage folder (it brings Node 22 on Linux and on Intel Macs), ' +
        'or install Node.js 22 LTS, then start Portage again.\n',
    );
    process.exit(1);
  }
}
