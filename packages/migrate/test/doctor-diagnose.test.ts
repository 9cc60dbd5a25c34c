/**
 * The doctor's diagnosis is a pure function of what it read from the servers; these are the
 * states the server tests (packages/cli/test/doctor.test.ts) do not make: a DID pointing at a
 * server without the account, a takedown, a DID document the server does not accept, no
 * password, an empty account that is fine, an unreachable server.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diagnose } from '../src/doctor/diagnose.ts';
import type { AccountInspection, AccountStatus, ServerView } from '../src/doctor/inspect.ts';

const CUR = 'https://new.example';
const OLD = 'https://old.example';

function status(over: Partial<AccountStatus> = {}): AccountStatus {
  return {
    activated: true,
    validDid: true,
    repoCommit: 'bafy',
    repoRev: '3l',
    repoBlocks: 10,
    indexedRecords: 5,
    privateStateValues: 1,
    expectedBlobs: 2,
    importedBlobs: 2,
    ...over,
  };
}

function server(url: string, role: 'current' | 'other', over: Partial<ServerView> = {}): ServerView {
  return { url, role, exists: true, active: true, status: status(), missingBlobs: [], ...over };
}

function inspection(current: ServerView, other?: ServerView): AccountInspection {
  return {
    did: 'did:plc:abc',
    handle: 'alice.example',
    pds: current.url,
    previousPds: OLD,
    earlierPdses: [OLD],
    current,
    ...(other ? { other } : {}),
  };
}

const codes = (ins: AccountInspection) =>
  diagnose(ins)
    .findings.filter((f) => f.severity === 'problem')
    .map((f) => f.code)
    .sort();

describe('doctor diagnosis', () => {
  it('a finished move is in order', () => {
    const d = diagnose(inspection(server(CUR, 'current'), server(OLD, 'other', { active: false })));
    assert.equal(d.healthy, true);
    assert.equal(d.findings[0]!.code, 'healthy');
    assert.deepEqual(d.repairs, []);
  });

  it('the DID points at a server without the account: the old one is left alone, the next step named', () => {
    const d = diagnose(inspection(server(CUR, 'current', { exists: false, status: undefined }), server(OLD, 'other')));
    assert.deepEqual(
      d.findings.map((f) => f.code),
      ['current-missing'],
    );
    assert.deepEqual(d.repairs, [], 'the old account, the only copy, is never deactivated');
    assert.deepEqual(d.findings[0]!.next, {
      kind: 'finish-move',
      did: 'did:plc:abc',
      to: CUR,
      fromPds: OLD,
      stage: 'account-missing',
    });
    assert.match(d.summary, /does not have it/);
  });

  it('a takedown is said as such and not repaired', () => {
    const d = diagnose(
      inspection(server(CUR, 'current', { active: false, publicStatus: 'takendown', status: undefined })),
    );
    assert.deepEqual(codes(inspection(server(CUR, 'current', { active: false, publicStatus: 'takendown' }))), [
      'current-takendown',
    ]);
    assert.deepEqual(d.repairs, []);
  });

  it('a DID document the server does not accept', () => {
    assert.deepEqual(codes(inspection(server(CUR, 'current', { status: status({ validDid: false }) }))), [
      'did-key-mismatch',
    ]);
  });

  it('without a password only the public status is known, and activation is not offered', () => {
    const d = diagnose(
      inspection(server(CUR, 'current', { active: false, status: undefined, missingBlobs: undefined })),
    );
    assert.deepEqual(d.repairs, []);
    assert.ok(d.findings.some((f) => f.code === 'current-not-signed-in'));
    assert.deepEqual(d.findings.find((f) => f.code === 'current-inactive')!.next, {
      kind: 'sign-in-to-repair',
      server: 'current',
    });
    assert.deepEqual(d.findings.find((f) => f.code === 'current-not-signed-in')!.next, {
      kind: 'need-input',
      field: 'password',
      reason: 'missing',
    });
    assert.equal(d.healthy, false);
  });

  it('an account with no records is fine when the other end has none either', () => {
    const empty = status({ indexedRecords: 0, expectedBlobs: 0, importedBlobs: 0 });
    assert.deepEqual(codes(inspection(server(CUR, 'current', { status: empty }))), []);
    assert.deepEqual(
      codes(
        inspection(
          server(CUR, 'current', { active: false, status: { ...empty, activated: false } }),
          server(OLD, 'other', { active: false }),
        ),
      ),
      ['both-deactivated', 'current-inactive', 'repo-not-imported'],
    );
  });

  it('an active account with no records is never overwritten', () => {
    const d = diagnose(
      inspection(
        server(CUR, 'current', { status: status({ indexedRecords: 0 }) }),
        server(OLD, 'other', { active: false }),
      ),
    );
    const finding = d.findings.find((f) => f.code === 'repo-not-imported')!;
    assert.equal(finding.repair, undefined);
    assert.deepEqual(d.repairs, []);
  });

  it('an unreachable server', () => {
    const d = diagnose(inspection(server(CUR, 'current', { unreachable: 'connect ECONNREFUSED', status: undefined })));
    assert.deepEqual(
      d.findings.map((f) => f.code),
      ['current-unreachable'],
    );
    assert.deepEqual(d.findings[0]!.next, { kind: 'restore-from-backup', reason: 'unreachable' });
  });
});
