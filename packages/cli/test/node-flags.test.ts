/** The V8 flags Portage's processes start with are the same in every launcher, and the command runs with them. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PORTAGE_NODE_FLAGS } from '../src/node-flags.ts';

const root = join(import.meta.dirname, '../../..');
const launcher = join(root, 'packages/cli/bin/portage.js');
const flags = PORTAGE_NODE_FLAGS.join(' ');

describe('Node flags', () => {
  it('npm start passes them', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
    assert.equal(pkg.scripts.start, `node ${flags} packages/cli/bin/portage.js serve`);
  });

  it('the portage command passes them on its first line, and runs as a program', () => {
    assert.equal(readFileSync(launcher, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
    // Started through its first line (as npx and an installed `portage` start it), not by `node`.
    const help = execFileSync(launcher, ['--help'], { encoding: 'utf8' });
    assert.match(help, /serve/);
  });

  it('the command runs with the flags in effect', () => {
    const report = execFileSync(launcher, ['--help'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '--require=./packages/cli/test/fixtures/print-exec-argv.cjs' },
      cwd: root,
    });
    for (const flag of PORTAGE_NODE_FLAGS) assert.ok(report.includes(flag), `${flag} in ${report}`);
  });
});
