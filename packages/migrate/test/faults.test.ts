/**
 * The engine against misbehaving networks and servers (reference PDSes behind a fault-injecting
 * proxy): it must still complete and verify. And a blob the old server lost must be reported by
 * CID with the record that needs it, with no identity change and no claim of success.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirectoryBackup, verifyBackup } from '../src/backup.node.ts';
import { migrate } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { MemoryStorage } from '../src/storage.ts';
import { startFaultProxy } from './helpers/fault-proxy.ts';
import { checkMigrated, createAccount, type Network, plcToken, snapshot, startNetwork } from './helpers/network.ts';

let net: Network;
before(async () => {
  net = await startNetwork(2);
});
after(() => net.close());

function credentials(password: string, token: () => Promise<string | undefined>) {
  return {
    oldPassword: async () => password,
    newPassword: async () => password,
    authFactorToken: async () => undefined,
    plcToken: async (requested: boolean) => (requested ? token() : undefined),
  };
}

describe('migration through faults', () => {
  it('completes and verifies through 500s, resets, 429s with RateLimit-Reset and a blob cut mid-body', async () => {
    const [a, b] = net.pdses;
    const hana = await createAccount(a!, 'hana', { records: 400, blobs: 16, blobSize: 120_000 });
    const before = await snapshot(a!, hana);
    const plan = { error500: 0.04, reset: 0.03, rateLimited: 0.03, cutBlobBodies: 2 };
    const oldProxy = await startFaultProxy(a!.url, { seed: 7, ...plan });
    const newProxy = await startFaultProxy(b!.url, { seed: 11, ...plan, cutBlobBodies: 0 });
    const events: MigrationEvent[] = [];
    const backupDir = mkdtempSync(join(net.dir, 'backup-'));
    try {
      const result = await migrate(
        { from: hana.did, fromPds: oldProxy.url, to: newProxy.url, plcUrl: net.plc.url, concurrency: 6 },
        {
          storage: new MemoryStorage(),
          credentials: credentials(hana.password, () => plcToken(a!, hana.did)),
          onEvent: (e) => events.push(e),
          openBackup: (did) => new DirectoryBackup(backupDir, did).open(),
        },
      );
      assert.equal(result.status, 'done', result.message);
    } finally {
      await oldProxy.close();
      await newProxy.close();
    }
    const stats = [oldProxy.stats, newProxy.stats];
    const total = (k: 'error500' | 'reset' | 'rateLimited' | 'cut') => stats.reduce((n, s) => n + s[k], 0);
    assert.ok(total('error500') > 0, 'some 500s were injected');
    assert.ok(total('reset') > 0, 'some resets were injected');
    assert.ok(total('rateLimited') > 0, 'some 429s were injected');
    assert.equal(oldProxy.stats.cut, 2, 'two blob downloads were cut mid-body');
    await checkMigrated(net, a!, b!, hana, before);
    const backup = await verifyBackup(backupDir);
    assert.equal(backup.blobs, hana.blobCids.length);
  });

  it('reports a blob the old server no longer has, with its record, and does not move the identity', async () => {
    const [a, b] = net.pdses;
    const ivan = await createAccount(a!, 'ivan', { records: 10, blobs: 3 });
    const lost = ivan.blobCids[1]!;
    await a!.ctx.blobstore(ivan.did).delete({ toString: () => lost } as never);
    const events: MigrationEvent[] = [];
    let tokenAsked = false;
    const result = await migrate(
      { from: ivan.did, fromPds: a!.url, to: b!.url, plcUrl: net.plc.url },
      {
        storage: new MemoryStorage(),
        credentials: credentials(ivan.password, async () => {
          tokenAsked = true;
          return plcToken(a!, ivan.did);
        }),
        onEvent: (e) => events.push(e),
      },
    );
    assert.equal(result.status, 'failed');
    assert.equal(result.missingBlobs?.length, 1);
    const missing = result.missingBlobs![0]!;
    assert.equal(missing.cid, lost);
    assert.match(missing.record ?? '', new RegExp(`^at://${ivan.did}/com\\.example\\.file/`));
    assert.match(missing.reason, /no longer has this blob/);
    assert.match(result.message, new RegExp(lost));
    assert.ok(!tokenAsked, 'the PLC token was never requested');
    const finished = events.find((e) => e.type === 'finished');
    assert.ok(finished && finished.type === 'finished' && finished.status === 'failed');
    assert.ok(!events.some((e) => e.type === 'step-started' && e.step === 'identity'));
    const doc = (await (await fetch(`${net.plc.url}/${ivan.did}`)).json()) as {
      service: { serviceEndpoint: string }[];
    };
    assert.equal(doc.service[0]!.serviceEndpoint, a!.url);
    const status = await ivan.agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.activated, true, 'the old account is untouched');
  });
});
