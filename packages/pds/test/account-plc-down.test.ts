import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startTestPds, type TestPds } from './harness.ts';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('sign-up while the PLC directory is down', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds({ plcUrl: `http://127.0.0.1:${await closedPort()}` });
  });
  after(async () => {
    await pds.close();
  });

  it('answers 502 UpstreamFailure and leaves no account or repository behind', async () => {
    const res = await fetch(`${pds.url}/xrpc/com.atproto.server.createAccount`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: 'alice.test', email: 'alice@example.com', password: 'pw-for-test' }),
    });
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error, 'UpstreamFailure');
    assert.equal(pds.ctx.accountManager.getAccount('alice.test'), undefined);
    const actors = pds.ctx.config.actorStoreDirectory;
    const leftovers = existsSync(actors)
      ? readdirSync(actors, { recursive: true }).filter((f) => String(f).endsWith('store.sqlite'))
      : [];
    assert.deepEqual(leftovers, []);
    const index = new Database(join(actors, 'repo-roots.sqlite'), { readonly: true });
    try {
      assert.deepEqual(index.prepare('SELECT did FROM repo_root').all(), [], 'no repository is listed');
    } finally {
      index.close();
    }
  });
});
