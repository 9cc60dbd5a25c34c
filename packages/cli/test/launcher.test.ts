/**
 * The `portage` launcher started by a Node too old for Portage's sources: it hands over to the
 * Node that `npm install` brought, and without one it says what to do in one sentence.
 * Needs such an old Node on the machine (Debian's /usr/bin/node, or PORTAGE_TEST_OLD_NODE).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = join(import.meta.dirname, '../../..');
const launcher = join(root, 'packages/cli/bin/portage.js');

function findOldNode(): string | undefined {
  for (const candidate of [process.env.PORTAGE_TEST_OLD_NODE, '/usr/bin/node', '/usr/local/bin/node']) {
    if (!candidate || !existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
    const [major, minor] = version.split('.').map(Number);
    if (major < 22 || (major === 22 && minor < 18)) return candidate;
  }
  return undefined;
}

const oldNode = findOldNode();
const skip = oldNode ? false : 'no Node older than 22.18 on this machine';

describe('portage launcher on an old Node', { skip }, () => {
  const temp = mkdtempSync(join(tmpdir(), 'portage-launcher-'));
  after(() => rmSync(temp, { recursive: true, force: true }));

  it('hands over to the Node the install brought', () => {
    const run = spawnSync(oldNode!, [launcher, '--help'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /Usage: portage <command>/);
    assert.match(run.stdout, /migrate/);
  });

  it('passes on the exit code of the command', () => {
    const run = spawnSync(oldNode!, [launcher, 'no-such-command'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /unknown command "no-such-command"/);
  });

  it('without that Node, says what to do in one sentence and exits 1', () => {
    // The launcher alone, in a folder with no node_modules beside it.
    const bin = join(temp, 'packages', 'cli', 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(launcher, join(bin, 'portage.js'));
    const run = spawnSync(oldNode!, [join(bin, 'portage.js'), '--help'], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0],
      /^Portage needs Node\.js 22\.18 or newer and this is Node\.js \d+\.\d+\.\d+: run `npm install`/,
    );
    assert.doesNotMatch(run.stderr, /\bat \S+ \(|Error/);
  });
});
