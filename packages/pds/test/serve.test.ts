import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = join(import.meta.dirname, '..', '..', '..');
const main = join(root, 'packages', 'cli', 'bin', 'portage.js');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function startServe(env: Record<string, string>, cwd: string): { child: ChildProcess; output: () => string } {
  let text = '';
  const child = spawn(process.execPath, [main, 'serve'], {
    cwd,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return { child, output: () => text };
}

function waitFor(check: () => boolean, child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`portage serve exited (${child.exitCode}) before ${what}`));
      }
    }, 50);
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('portage serve', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portage-serve-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts with an embedded PLC directory, prints URL and admin password, answers, stops on SIGTERM', async () => {
    const [port, plcPort] = [await freePort(), await freePort()];
    const { child, output } = startServe(
      { PDS_PORT: String(port), PORTAGE_PLC_PORT: String(plcPort), PDS_DATA_DIRECTORY: join(dir, 'data') },
      dir,
    );
    try {
      await waitFor(() => output().includes('Create an account'), child, 'printing its banner');
      assert.match(output(), new RegExp(`Portage PDS running at http://localhost:${port}`));
      const password = /admin password\s+([0-9a-f]{32})\s+\(generated/.exec(output())?.[1];
      assert.ok(password, 'the generated admin password is printed');
      assert.equal(statSync(join(dir, 'data', 'secrets.json')).mode & 0o777, 0o600);

      const health = await fetch(`http://127.0.0.1:${port}/xrpc/_health`);
      assert.equal(health.status, 200);
      const describe = await (await fetch(`http://127.0.0.1:${port}/xrpc/com.atproto.server.describeServer`)).json();
      assert.equal(describe.inviteCodeRequired, false);
      const created = await fetch(`http://127.0.0.1:${port}/xrpc/com.atproto.server.createAccount`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ handle: 'alice.test', email: 'alice@example.com', password: 'pw-for-test' }),
      });
      assert.equal(created.status, 200);
      const { did } = await created.json();
      const doc = await fetch(`http://127.0.0.1:${plcPort}/${did}`);
      assert.equal(doc.status, 200, 'the DID is in the embedded PLC directory');
      const admin = await fetch(`http://127.0.0.1:${port}/xrpc/com.atproto.server.createInviteCode`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
        },
        body: JSON.stringify({ useCount: 1 }),
      });
      assert.equal(admin.status, 200, 'the printed admin password works');

      child.kill('SIGTERM');
      assert.equal(await exitOf(child), 0);
      assert.match(output(), /Stopped\./);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses to start on a bad setting, naming the variable', async () => {
    const { child, output } = startServe({ PDS_PORT: 'eighty', PDS_DATA_DIRECTORY: join(dir, 'bad') }, dir);
    assert.equal(await exitOf(child), 2);
    assert.match(output(), /PDS_PORT/);
  });
});
