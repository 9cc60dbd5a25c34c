/** The health check (databases and blob store, 503 when one fails), liveness, and request ids. */
import assert from 'node:assert/strict';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestPds, type TestPds } from './harness.ts';

describe('health, liveness and request ids', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds();
  });
  after(() => pds?.close());

  const health = async () => {
    const res = await fetch(`${pds.url}/xrpc/_health`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const live = async () => (await fetch(`${pds.url}/livez`)).status;

  it('answers 200 with the version while everything works', async () => {
    assert.deepEqual(await health(), { status: 200, body: { version: pds.ctx.config.version } });
    assert.equal(await live(), 200);
  });

  it('answers 503 while the account database file is gone, and 200 again once it is back', async () => {
    const path = pds.ctx.config.accountDbPath;
    renameSync(path, `${path}.away`);
    try {
      const down = await health();
      assert.equal(down.status, 503);
      assert.equal(down.body.error, 'Service Unavailable');
      assert.equal(await live(), 200, 'liveness does not touch storage');
    } finally {
      renameSync(`${path}.away`, path);
    }
    assert.equal((await health()).status, 200);
  });

  it('answers 503 while the blob store cannot be written', async () => {
    const dir = pds.ctx.config.blobstoreDiskLocation;
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'a file where the blob folder should be');
    try {
      assert.equal((await health()).status, 503);
    } finally {
      rmSync(dir, { force: true });
    }
    assert.equal((await health()).status, 200);
  });

  it('gives every response a request id, keeping one a proxy in front gave', async () => {
    const a = (await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`)).headers.get('x-request-id');
    const b = (await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`)).headers.get('x-request-id');
    assert.ok(a && b && a !== b);
    const given = await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`, {
      headers: { 'x-request-id': 'edge-1234.abc' },
    });
    assert.equal(given.headers.get('x-request-id'), 'edge-1234.abc');
    const odd = await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`, {
      headers: { 'x-request-id': 'not an id <script>' },
    });
    assert.notEqual(odd.headers.get('x-request-id'), 'not an id <script>');
    const failed = await fetch(`${pds.url}/xrpc/com.atproto.repo.getRecord`);
    assert.ok(failed.headers.get('x-request-id'), 'errors carry one too');
  });
});
