import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ExportableSigningKey, generateSigningKey } from '@portage/atproto/crypto';
import { PlcClient, PlcError } from '@portage/atproto/plc/client';
import { plcDataToDidDocument } from '@portage/atproto/plc/document';
import {
  cidForPlcOperation,
  createGenesisOperation,
  createTombstone,
  type PlcOperation,
  updateOperation,
} from '@portage/atproto/plc/operations';
import { verifyAuditLog } from '@portage/atproto/plc/rules';
import { PlcDirectory } from '../src/plc/directory.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';

const HOUR = 3_600_000;
let root: string;
let running: RunningPlcDirectory;
let client: PlcClient;
let clock = Date.parse('2026-03-01T00:00:00.000Z');
let recovery: ExportableSigningKey;
let pds: ExportableSigningKey;
let signing: ExportableSigningKey;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'portage-plc-'));
  running = await startPlcDirectory({ port: 0, dataDirectory: join(root, 'plc'), now: () => new Date(clock) });
  client = new PlcClient(running.url);
  [recovery, pds, signing] = await Promise.all([generateSigningKey(), generateSigningKey(), generateSigningKey()]);
});

after(async () => {
  await running?.close();
  rmSync(root, { recursive: true, force: true });
});

async function register(handle: string) {
  const { did, operation } = await createGenesisOperation({
    signingKeyDid: signing.did(),
    rotationKeys: [recovery.did(), pds.did()],
    handle,
    pdsEndpoint: 'https://pds.example.com',
    rotationKey: pds,
  });
  await client.submitOperation(did, operation);
  return { did, genesis: operation, genesisCid: cidForPlcOperation(operation) };
}

async function expectPlcError(promise: Promise<unknown>, code: string, status: number, pattern?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PlcError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.status, status);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('embedded PLC directory over HTTP', () => {
  it('binds loopback and keeps its database private', () => {
    assert.match(running.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(statSync(join(root, 'plc', 'plc.sqlite')).mode & 0o777, 0o600);
  });

  it('registers a DID and serves document, data, log, last and audit', async () => {
    const { did, genesis, genesisCid } = await register('alice.test');
    const doc = await client.getDocument(did);
    assert.deepEqual(doc, plcDataToDidDocument(did, genesis));
    const data = await client.getDocumentData(did);
    assert.deepEqual(data, {
      did,
      rotationKeys: genesis.rotationKeys,
      verificationMethods: genesis.verificationMethods,
      alsoKnownAs: ['at://alice.test'],
      services: genesis.services,
    });
    clock += 1000;
    const update = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://alice2.test'] }, pds);
    await client.submitOperation(did, update);
    assert.deepEqual(await client.getLastOperation(did), update);
    assert.deepEqual(await client.getOperationLog(did), [genesis, update]);
    const audit = await client.getAuditLog(did);
    assert.deepEqual(
      audit.map((e) => [e.did, e.cid, e.nullified]),
      [
        [did, genesisCid, false],
        [did, cidForPlcOperation(update), false],
      ],
    );
    assert.ok(audit[0]!.createdAt < audit[1]!.createdAt);
    assert.equal((await client.getDocument(did)).alsoKnownAs?.[0], 'at://alice2.test');
    const res = await fetch(`${running.url}/${did}`);
    assert.match(res.headers.get('content-type') ?? '', /application\/did\+ld\+json/);
  });

  it('rejects bad operations with 400 {message} and stores nothing', async () => {
    const { did, genesis, genesisCid } = await register('bob.test');
    const stranger = await generateSigningKey();
    const forged = await updateOperation(genesis, genesisCid, { rotationKeys: [stranger.did()] }, stranger);
    await expectPlcError(client.submitOperation(did, forged), 'Rejected', 400, /not signed by any rotation key/);
    await expectPlcError(
      client.submitOperation('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', genesis),
      'Rejected',
      400,
      /hashes to/,
    );
    await expectPlcError(
      client.submitOperation(did, { ...genesis, rotationKeys: [] } as PlcOperation),
      'Rejected',
      400,
      /rotationKeys must hold 1-5/,
    );
    const raw = await fetch(`${running.url}/${did}`, { method: 'POST', body: '{not json' });
    assert.equal(raw.status, 400);
    assert.deepEqual(await raw.json(), { message: 'request body is not valid JSON' });
    const big = await fetch(`${running.url}/${did}`, { method: 'POST', body: 'x'.repeat(64 * 1024) });
    assert.equal(big.status, 413);
    assert.equal((await client.getAuditLog(did)).length, 1);
  });

  it('404 for an unknown DID on every read route', async () => {
    const unknown = 'did:plc:zzzzzzzzzzzzzzzzzzzzzzzz';
    for (const suffix of ['', '/data', '/log', '/log/audit', '/log/last']) {
      const res = await fetch(`${running.url}/${unknown}${suffix}`);
      assert.equal(res.status, 404, suffix);
      assert.deepEqual(await res.json(), { message: `DID not registered: ${unknown}` });
    }
    await expectPlcError(client.getDocument(unknown), 'NotFound', 404);
  });

  it('a tombstoned DID answers 410 but keeps its log; a later update is refused', async () => {
    const { did, genesis, genesisCid } = await register('carol.test');
    clock += 1000;
    const tomb = await createTombstone(genesisCid, pds);
    await client.submitOperation(did, tomb);
    await expectPlcError(client.getDocument(did), 'NotFound', 410, /DID not available/);
    await expectPlcError(client.getDocumentData(did), 'NotFound', 410);
    assert.deepEqual(await client.getLastOperation(did), tomb);
    assert.equal((await client.getOperationLog(did)).length, 2);
    const next = await updateOperation(genesis, cidForPlcOperation(tomb), {}, pds);
    await expectPlcError(client.submitOperation(did, next), 'Rejected', 400, /deactivated/);
  });

  it('recovery inside the window nullifies; outside it is refused; the audit log replays', async () => {
    const { did, genesis, genesisCid } = await register('dave.test');
    clock += HOUR;
    const hijack = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://evil.test'] }, pds);
    await client.submitOperation(did, hijack);
    clock += 71 * HOUR;
    const recover = await updateOperation(genesis, genesisCid, { rotationKeys: [recovery.did()] }, recovery);
    await client.submitOperation(did, recover);
    const audit = await client.getAuditLog(did);
    assert.deepEqual(
      audit.map((e) => e.nullified),
      [false, true, false],
    );
    assert.deepEqual(await client.getOperationLog(did), [genesis, recover]);
    const state = await verifyAuditLog(did, audit);
    assert.deepEqual(state?.rotationKeys, [recovery.did()]);

    // A second DID: the hijack is 73 hours old when recovery comes.
    const second = await register('erin.test');
    clock += HOUR;
    await client.submitOperation(
      second.did,
      await updateOperation(second.genesis, second.genesisCid, { alsoKnownAs: [] }, pds),
    );
    clock += 73 * HOUR;
    const late = await updateOperation(second.genesis, second.genesisCid, { alsoKnownAs: ['at://x.test'] }, recovery);
    await expectPlcError(client.submitOperation(second.did, late), 'Rejected', 400, /72 hours/);
  });

  it('concurrent conflicting updates: exactly one is accepted', async () => {
    const { did, genesis, genesisCid } = await register('frank.test');
    clock += 1000;
    const ops = await Promise.all(
      ['a', 'b', 'c', 'd'].map((h) => updateOperation(genesis, genesisCid, { alsoKnownAs: [`at://${h}.test`] }, pds)),
    );
    const results = await Promise.allSettled(ops.map((op) => client.submitOperation(did, op)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const audit = await client.getAuditLog(did);
    assert.equal(audit.length, 2);
    assert.ok(audit.every((e) => !e.nullified));
  });

  it('/export pages through every entry in order by ?after and ?count', async () => {
    const all = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await client.export({ after: cursor, count: 3 });
      if (page.length === 0) break;
      assert.ok(page.length <= 3);
      all.push(...page);
      cursor = page.at(-1)!.createdAt;
    }
    const times = all.map((e) => e.createdAt);
    assert.deepEqual([...times].sort(), times);
    assert.equal(new Set(times).size, times.length);
    const dids = new Set(all.map((e) => e.did));
    let total = 0;
    for (const did of dids) total += (await client.getAuditLog(did)).length;
    assert.equal(all.length, total);
    assert.ok(all.length >= 10);
    const bad = await fetch(`${running.url}/export?after=yesterday`);
    assert.equal(bad.status, 400);
    assert.equal((await fetch(`${running.url}/export?count=0`)).status, 400);
  });

  it('survives a restart: the database holds everything', async () => {
    const dir = join(root, 'restart');
    const first = new PlcDirectory({ dataDirectory: dir });
    const { did, operation } = await createGenesisOperation({
      signingKeyDid: signing.did(),
      rotationKeys: [pds.did()],
      handle: 'gina.test',
      pdsEndpoint: 'https://pds.example.com',
      rotationKey: pds,
    });
    await first.submit(did, operation);
    first.close();
    const second = new PlcDirectory({ dataDirectory: dir });
    try {
      assert.deepEqual(second.getOperationLog(did), [operation]);
      assert.equal(second.resolve(did).status, 'active');
    } finally {
      second.close();
    }
  });
});
