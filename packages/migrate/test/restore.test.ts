/**
 * The restore engine's parts: where the recovery key may attach to a DID's PLC log (and when it
 * may not), and a did:web account restored from a backup with its old server gone: the engine
 * prints each did.json to publish, and checks it on the next run before going on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { type ExportableSigningKey, generateSigningKey } from '@portage/atproto/crypto';
import type { DidDocument } from '@portage/atproto/identity/did-document';
import type { PlcAuditEntry } from '@portage/atproto/plc/client';
import { cidForPlcOperation, createGenesisOperation, updateOperation } from '@portage/atproto/plc/operations';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { backupAccount } from '../src/backup-run.ts';
import { DirectoryBackup } from '../src/backup.node.ts';
import { backupAccountDid, verifyBackup } from '../src/backup-check.node.ts';
import type { MigrationError } from '../src/errors.ts';
import type { MigrationEvent } from '../src/events.ts';
import { planIdentity } from '../src/restore/identity-plan.ts';
import { restore, type RestoreResult } from '../src/restore/restore.ts';
import { MemoryStorage } from '../src/storage.ts';
import { createDidWebAccount, type DidWebHost, startDidWebHost } from './helpers/did-web-host.ts';

const HOUR = 3_600_000;

describe('where the recovery key attaches to the PLC log', () => {
  let user: ExportableSigningKey;
  let server: ExportableSigningKey;
  let log: PlcAuditEntry[];
  let did: string;
  const t0 = Date.parse('2026-01-01T00:00:00Z');

  before(async () => {
    user = await generateSigningKey();
    server = await generateSigningKey();
    const signing = await generateSigningKey();
    const genesis = await createGenesisOperation({
      signingKeyDid: signing.did(),
      rotationKeys: [server.did()],
      handle: 'pat.test',
      pdsEndpoint: 'https://old.example',
      rotationKey: server,
    });
    did = genesis.did;
    const added = await updateOperation(
      genesis.operation,
      cidForPlcOperation(genesis.operation),
      { rotationKeys: [user.did(), server.did()] },
      server,
    );
    log = [
      {
        did,
        operation: genesis.operation,
        cid: cidForPlcOperation(genesis.operation),
        nullified: false,
        createdAt: new Date(t0).toISOString(),
      },
      {
        did,
        operation: added,
        cid: cidForPlcOperation(added),
        nullified: false,
        createdAt: new Date(t0 + HOUR).toISOString(),
      },
    ];
  });

  /** The log with an operation by the server's key that points the DID elsewhere and drops the user's key. */
  async function withHostile(at: number): Promise<PlcAuditEntry[]> {
    const last = log.at(-1)!;
    const hostile = await updateOperation(
      last.operation as never,
      last.cid,
      {
        rotationKeys: [server.did()],
        services: { atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint: 'https://elsewhere.example' } },
      },
      server,
    );
    return [
      ...log,
      {
        did,
        operation: hostile,
        cid: cidForPlcOperation(hostile),
        nullified: false,
        createdAt: new Date(at).toISOString(),
      },
    ];
  }

  it('follows the latest operation when the key is among its rotation keys', async () => {
    const plan = await planIdentity({ did, log, key: user.did(), keyFile: 'k', now: new Date(t0 + 2 * HOUR) });
    assert.equal(plan.prev.cid, log[1]!.cid);
    assert.deepEqual(plan.overrides, []);
  });

  it('overrides an operation by a lower key within 72 hours, and refuses one older', async () => {
    const hostileLog = await withHostile(t0 + 2 * HOUR);
    const plan = await planIdentity({
      did,
      log: hostileLog,
      key: user.did(),
      keyFile: 'k',
      now: new Date(t0 + 3 * HOUR),
    });
    assert.equal(plan.prev.cid, log[1]!.cid);
    assert.deepEqual(
      plan.overrides.map((e) => e.cid),
      [hostileLog[2]!.cid],
    );
    assert.equal(plan.overriddenSigner, server.did());
    await assert.rejects(
      planIdentity({ did, log: hostileLog, key: user.did(), keyFile: 'k', now: new Date(t0 + 75 * HOUR) }),
      (err: MigrationError) =>
        err.code === 'RecoveryWindowPassed' && /73 hours ago.*only within 72 hours/.test(err.message),
    );
  });

  it('refuses a key that ranks below the one that made the change, and a key never listed', async () => {
    const hostileLog = await withHostile(t0 + 2 * HOUR);
    // The server's key (second in the rotation keys) cannot undo its own change with the user's rank.
    const lowerFirst = [...log.slice(0, 1)];
    const reordered = await updateOperation(
      log[0]!.operation as never,
      log[0]!.cid,
      { rotationKeys: [server.did(), user.did()] },
      server,
    );
    lowerFirst.push({
      did,
      operation: reordered,
      cid: cidForPlcOperation(reordered),
      nullified: false,
      createdAt: new Date(t0 + HOUR).toISOString(),
    });
    const dropped = await updateOperation(
      reordered,
      cidForPlcOperation(reordered),
      { rotationKeys: [server.did()] },
      server,
    );
    lowerFirst.push({
      did,
      operation: dropped,
      cid: cidForPlcOperation(dropped),
      nullified: false,
      createdAt: new Date(t0 + 2 * HOUR).toISOString(),
    });
    await assert.rejects(
      planIdentity({ did, log: lowerFirst, key: user.did(), keyFile: 'k', now: new Date(t0 + 3 * HOUR) }),
      (err: MigrationError) => err.code === 'KeyOutranked' && err.message.includes(server.did()),
    );
    const stranger = await generateSigningKey();
    await assert.rejects(
      planIdentity({
        did,
        log: hostileLog,
        key: stranger.did(),
        keyFile: 'stranger.key',
        now: new Date(t0 + 3 * HOUR),
      }),
      (err: MigrationError) => {
        assert.equal(err.code, 'KeyNotRotationKey');
        assert.ok(err.message.includes('stranger.key'));
        assert.deepEqual(err.nextStep, {
          kind: 'need-input',
          field: 'recoveryKey',
          reason: 'mismatch',
          nothingChanged: true,
        });
        return true;
      },
    );
  });
});

describe('restoring a did:web account', () => {
  let oldPds: TestPds;
  let newPds: TestPds;
  let didHost: DidWebHost;
  let did: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-restore-web-'));
    oldPds = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:old-pds.test' } });
    newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:new-pds.test' } });
    didHost = await startDidWebHost();
    did = didHost.did;
  });

  after(async () => {
    await didHost?.close();
    await newPds?.close();
    await oldPds?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints each did.json to publish and checks it before going on', async () => {
    const password = 'webby-password';
    const agent = await createDidWebAccount(didHost, oldPds, 'did:web:old-pds.test', password);
    for (let i = 0; i < 20; i++) {
      await agent.com.atproto.repo.createRecord({
        repo: did,
        collection: 'com.example.note',
        validate: false,
        record: { $type: 'com.example.note', text: `note ${i}`, createdAt: new Date().toISOString() },
      });
    }
    const { data } = await agent.com.atproto.repo.uploadBlob(crypto.getRandomValues(new Uint8Array(30_000)), {
      encoding: 'image/png',
    });
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
    });
    const backupDir = join(dir, 'backup');
    const backedUp = await backupAccount(
      { from: did, pds: oldPds.url, plcUrl: oldPds.plcUrl },
      { onEvent: () => {}, password, openBackup: (d) => new DirectoryBackup(backupDir, d).open() },
    );
    assert.equal(backedUp.status, 'done', backedUp.message);
    assert.ok((await verifyBackup(backupDir)).signedBy, 'the backup checks its own signature');
    await oldPds.close();

    const storage = new MemoryStorage();
    const recoveryKey = await generateSigningKey();
    const run = async (): Promise<{ result: RestoreResult; events: MigrationEvent[] }> => {
      const events: MigrationEvent[] = [];
      const backupDid = await backupAccountDid(backupDir);
      const result = await restore(
        { to: newPds.url, plcUrl: newPds.plcUrl, email: 'webby@example.org', keyFile: 'web.key' },
        {
          storage,
          backup: new DirectoryBackup(backupDir, backupDid),
          recoveryKey,
          checkBackup: (signingKeys, orRecordedKey) =>
            verifyBackup(backupDir, { did: backupDid, signingKeys, orRecordedKey }),
          password: async () => password,
          onEvent: (e) => events.push(e),
        },
      );
      return { result, events };
    };
    const wantedDocument = (events: MigrationEvent[]) => {
      const notice = events.find((e) => e.type === 'notice');
      assert.ok(notice?.type === 'notice', 'the restore shows the document to publish');
      return JSON.parse(notice.message.slice(notice.message.indexOf('\n') + 1)) as DidDocument;
    };

    // First the document must name the new server with a key the restore holds.
    const first = await run();
    assert.equal(first.result.status, 'failed', first.result.message);
    assert.match(first.result.message, /does not name .* with a signing key the restore holds yet/);
    assert.deepEqual(first.result.next, {
      kind: 'publish-did-document',
      host: decodeURIComponent(did.slice('did:web:'.length)),
    });
    const claim = wantedDocument(first.events);
    assert.equal(claim.service?.[0]?.serviceEndpoint, newPds.url);
    const unpublished = await run();
    assert.equal(unpublished.result.status, 'failed', 'nothing goes on before it is published');
    didHost.published = claim;

    // Then the account is created and filled, and the final document names the new server's key.
    const second = await run();
    assert.equal(second.result.status, 'failed');
    assert.match(second.result.message, /does not name .* with the new server's signing key yet/);
    const final = wantedDocument(second.events);
    assert.equal(final.service?.[0]?.serviceEndpoint, newPds.publicUrl);
    const neu = new AtpAgent({ service: newPds.url });
    await neu.login({ identifier: did, password });
    assert.equal(neu.session?.active, false, 'the account waits, deactivated');
    didHost.published = final;

    const third = await run();
    assert.equal(third.result.status, 'done', third.result.message);
    await neu.login({ identifier: did, password });
    assert.equal(neu.session?.active, true);
    const status = await neu.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.validDid, true);
    assert.equal(status.data.indexedRecords, 21);
    const blob = await fetch(
      `${newPds.url}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${data.blob.ref.toString()}`,
    );
    assert.equal(blob.status, 200);
  });
});
