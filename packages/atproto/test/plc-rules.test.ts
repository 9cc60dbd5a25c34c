import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as refPlc from '@did-plc/lib';
import { CID } from 'multiformats/cid';
import { type ExportableSigningKey, generateSigningKey } from '../src/crypto.ts';
import { PlcError, type PlcErrorCode } from '../src/plc/errors.ts';
import {
  type AnyPlcOperation,
  cidForPlcOperation,
  createGenesisOperation,
  createTombstone,
  didForGenesisOperation,
  type PlcOperation,
  signPlcOperation,
  updateOperation,
} from '../src/plc/operations.ts';
import {
  PLC_RECOVERY_WINDOW_MS,
  type PlcLogEntry,
  validateNextOperation,
  verifyAuditLog,
  verifyOperationChain,
} from '../src/plc/rules.ts';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

let recovery: ExportableSigningKey; // rotationKeys[0]: highest priority (the user's key)
let pds: ExportableSigningKey; // rotationKeys[1]: the PDS's key
let signing: ExportableSigningKey;
let stranger: ExportableSigningKey;

before(async () => {
  [recovery, pds, signing, stranger] = await Promise.all([
    generateSigningKey(),
    generateSigningKey('p256'),
    generateSigningKey(),
    generateSigningKey(),
  ]);
});

/** A log being built up the way a directory would, accepting each operation at a given time. */
class TestLog {
  readonly did: string;
  readonly entries: PlcLogEntry[] = [];
  constructor(did: string) {
    this.did = did;
  }
  async submit(operation: AnyPlcOperation, atMs: number) {
    const accepted = await validateNextOperation({
      did: this.did,
      log: this.entries,
      operation,
      now: new Date(atMs),
    });
    for (const entry of this.entries) if (accepted.nullifies.includes(entry.cid)) entry.nullified = true;
    this.entries.push({ cid: accepted.cid, operation, createdAt: new Date(atMs).toISOString(), nullified: false });
    return accepted;
  }
  async reject(operation: AnyPlcOperation, atMs: number, code: PlcErrorCode, pattern?: RegExp) {
    await assert.rejects(
      validateNextOperation({ did: this.did, log: this.entries, operation, now: new Date(atMs) }),
      (err: unknown) => {
        assert.ok(err instanceof PlcError, `expected a PlcError, got ${String(err)}`);
        assert.equal(err.code, code, err.message);
        if (pattern) assert.match(err.message, pattern);
        return true;
      },
    );
  }
}

async function genesisLog() {
  const { did, operation } = await createGenesisOperation({
    signingKeyDid: signing.did(),
    rotationKeys: [recovery.did(), pds.did()],
    handle: 'alice.test',
    pdsEndpoint: 'https://pds.example.com',
    rotationKey: pds,
  });
  const log = new TestLog(did);
  await log.submit(operation, T0);
  return { log, genesis: operation, genesisCid: cidForPlcOperation(operation) };
}

describe('plc rule engine', () => {
  it('accepts a valid chain and reports the resulting state', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const op2 = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://alice2.test'] }, pds);
    const accepted = await log.submit(op2, T0 + HOUR);
    assert.deepEqual(accepted.nullifies, []);
    assert.equal(accepted.signer, pds.did());
    assert.deepEqual(accepted.data?.alsoKnownAs, ['at://alice2.test']);
    const op3 = await updateOperation(op2, accepted.cid, { rotationKeys: [recovery.did()] }, recovery);
    await log.submit(op3, T0 + 2 * HOUR);
    const state = await verifyOperationChain(log.did, [genesis, op2, op3]);
    assert.deepEqual(state?.rotationKeys, [recovery.did()]);
    assert.equal(state?.did, log.did);
    // pds's key was rotated out by op3: it can no longer sign.
    const op4 = await updateOperation(op3, cidForPlcOperation(op3), { alsoKnownAs: [] }, pds);
    await log.reject(op4, T0 + 3 * HOUR, 'InvalidSignature');
  });

  it('rejects a genesis operation that does not produce the DID, or is not self-signed', async () => {
    const { genesis } = await genesisLog();
    const other = new TestLog('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa');
    await other.reject(genesis, T0, 'DidMismatch', /hashes to did:plc:/);
    const { sig: _sig, ...unsigned } = genesis;
    const forged = await signPlcOperation(unsigned, stranger);
    await new TestLog(didForGenesisOperation(forged)).reject(forged, T0, 'InvalidSignature', /own rotation keys/);
  });

  it('rejects a bad signature, a wrong prev, a second genesis and a duplicate', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    await log.reject(
      await updateOperation(genesis, genesisCid, { alsoKnownAs: [] }, stranger),
      T0 + HOUR,
      'InvalidSignature',
    );
    const bogusPrev = cidForPlcOperation(await createTombstone(genesisCid, stranger));
    await log.reject(
      await updateOperation(genesis, bogusPrev, { alsoKnownAs: [] }, pds),
      T0 + HOUR,
      'MisorderedOperation',
      /is not an operation of/,
    );
    await log.reject(
      await signPlcOperation({ ...genesis, alsoKnownAs: ['at://b.test'] }, pds),
      T0 + HOUR,
      'MisorderedOperation',
      /already exists/,
    );
    await log.reject(genesis, T0 + HOUR, 'MisorderedOperation', /already in the log/);
    await new TestLog(log.did).reject(
      await updateOperation(genesis, genesisCid, {}, pds),
      T0,
      'MisorderedOperation',
      /not registered/,
    );
  });

  it('a higher-priority key nullifies later operations inside the 72-hour window', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const hijack = await updateOperation(genesis, genesisCid, { rotationKeys: [stranger.did()] }, pds);
    const hijackAccepted = await log.submit(hijack, T0 + HOUR);
    const hijack2 = await updateOperation(hijack, hijackAccepted.cid, { alsoKnownAs: ['at://evil.test'] }, stranger);
    const hijack2Accepted = await log.submit(hijack2, T0 + 2 * HOUR);

    const recover = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://alice.test'] }, recovery);
    const at = T0 + HOUR + PLC_RECOVERY_WINDOW_MS - 1;
    const accepted = await log.submit(recover, at);
    assert.deepEqual(accepted.nullifies, [hijackAccepted.cid, hijack2Accepted.cid]);
    assert.equal(accepted.signer, recovery.did());
    assert.deepEqual(
      log.entries.map((e) => e.nullified),
      [false, true, true, false],
    );
    // Nullified operations cannot be built on.
    await log.reject(
      await updateOperation(hijack2, hijack2Accepted.cid, {}, stranger),
      at + 1,
      'MisorderedOperation',
      /was nullified/,
    );
    // The directory's record replays to the same flags and state.
    const state = await verifyAuditLog(log.did, log.entries);
    assert.deepEqual(state?.rotationKeys, [recovery.did(), pds.did()]);
  });

  it('the reference rule engine makes the same decision on the same recovery', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const now = Date.now();
    const hijack = await updateOperation(genesis, genesisCid, { alsoKnownAs: [] }, pds);
    await log.submit(hijack, now - HOUR);
    const recover = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://r.test'] }, recovery);
    const ours = await validateNextOperation({
      did: log.did,
      log: log.entries,
      operation: recover,
      now: new Date(now),
    });
    const indexed = log.entries.map((e) => ({
      did: log.did,
      operation: e.operation,
      cid: CID.parse(e.cid),
      nullified: e.nullified,
      createdAt: new Date(e.createdAt),
    }));
    const theirs = await refPlc.assureValidNextOp(log.did, indexed as never, recover as never);
    assert.deepEqual(
      theirs.nullified.map((c: CID) => c.toString()),
      ours.nullifies,
    );
    // ...and both refuse the lower-priority key's attempt to undo the recovery key's operation.
    await log.submit(recover, now);
    const counter = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://c.test'] }, pds);
    await log.reject(counter, now + 1, 'InvalidSignature', /no priority/);
    const indexed2 = log.entries.map((e) => ({
      did: log.did,
      operation: e.operation,
      cid: CID.parse(e.cid),
      nullified: e.nullified,
      createdAt: new Date(e.createdAt),
    }));
    await assert.rejects(refPlc.assureValidNextOp(log.did, indexed2 as never, counter as never));
  });

  it('rejects nullification outside the window, or by a key without priority', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const op2 = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://two.test'] }, pds);
    await log.submit(op2, T0 + HOUR);
    const recover = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://r.test'] }, recovery);
    await log.reject(recover, T0 + HOUR + PLC_RECOVERY_WINDOW_MS + 1, 'LateRecovery', /within 72 hours/);
    // Same priority (the key that signed op2) cannot fork either.
    const sameKey = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://s.test'] }, pds);
    await log.reject(sameKey, T0 + 2 * HOUR, 'InvalidSignature', /no priority over rotationKeys\[1\]/);

    // An operation signed by the top key cannot be undone by the second key, even at once.
    const op3 = await updateOperation(op2, cidForPlcOperation(op2), { alsoKnownAs: ['at://three.test'] }, recovery);
    await log.submit(op3, T0 + 3 * HOUR);
    const undo = await updateOperation(op2, cidForPlcOperation(op2), { alsoKnownAs: ['at://u.test'] }, pds);
    await log.reject(undo, T0 + 3 * HOUR + 1, 'InvalidSignature', /no priority over rotationKeys\[0\]/);
  });

  it('a tombstone ends the DID unless a higher-priority key recovers it in time', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const tomb = await createTombstone(genesisCid, pds);
    const tombAccepted = await log.submit(tomb, T0 + HOUR);
    assert.equal(tombAccepted.data, null);
    const after = await updateOperation(genesis, tombAccepted.cid, {}, recovery);
    await log.reject(after, T0 + 2 * HOUR, 'Tombstoned', /deactivated/);
    await log.reject(await createTombstone(tombAccepted.cid, recovery), T0 + 2 * HOUR, 'Tombstoned');
    await log.reject(
      await updateOperation(genesis, genesisCid, {}, recovery),
      T0 + HOUR + PLC_RECOVERY_WINDOW_MS + 1,
      'LateRecovery',
    );
    const revive = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://back.test'] }, recovery);
    const accepted = await log.submit(revive, T0 + 2 * HOUR);
    assert.deepEqual(accepted.nullifies, [tombAccepted.cid]);
    assert.deepEqual(accepted.data?.alsoKnownAs, ['at://back.test']);
  });

  it('verifyOperationChain and verifyAuditLog catch a broken record', async () => {
    const { log, genesis, genesisCid } = await genesisLog();
    const op2 = await updateOperation(genesis, genesisCid, { alsoKnownAs: ['at://two.test'] }, pds);
    await log.submit(op2, T0 + HOUR);
    const op3: PlcOperation = await updateOperation(op2, cidForPlcOperation(op2), { alsoKnownAs: [] }, pds);
    await assert.rejects(verifyOperationChain(log.did, [genesis, op3]), /does not name it as prev/);
    await assert.rejects(verifyOperationChain(log.did, [op2]), /not registered/);
    const tampered = log.entries.map((e, i) => ({ ...e, nullified: i === 1 }));
    await assert.rejects(verifyAuditLog(log.did, tampered), /rules say otherwise/);
  });
});
