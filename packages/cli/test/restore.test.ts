/**
 * `portage restore` with the old server gone: accounts on a reference PDS with a rotation key the
 * user holds and a `portage backup`; the reference PDS is stopped for good; the restore brings
 * them to Portage. Bad input is refused before the PLC log or the new server change.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import type { TestPds as ReferencePds } from '@atproto/dev-env';
import { generateSigningKey } from '@portage/atproto/crypto';
import { verifyBackup } from '@portage/migrate/backup.node';
import { repoRecords, runCli } from '../../migrate/test/helpers/network.ts';
import { readFirehose } from '../../pds/test/harness.ts';
import { startReferencePds } from '../../../test/support/reference-peers.ts';
import {
  auditLog,
  type BackedUpAccount,
  backedUpAccount,
  HOUR,
  hostileMove,
  type RestoreNetwork,
  restoreArgs,
  startRestoreNetwork,
} from './restore-network.ts';

let net: RestoreNetwork;
let dir: string;
let jane: BackedUpAccount;
let kim: BackedUpAccount;
let lou: BackedUpAccount;
let mia: BackedUpAccount;
/** A second reference PDS: restores must land on the reference too, not only on Portage. */
let referenceTarget: ReferencePds;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-restore-'));
  net = await startRestoreNetwork(dir);
  // Operations are stamped in the past so the hostile ones below are as old as each case needs,
  // with the directory's clock only ever moving forward.
  net.setClock(-100 * HOUR);
  [jane, kim, lou, mia] = await Promise.all([
    backedUpAccount(net, 'jane', { records: 300, blobs: 6 }),
    backedUpAccount(net, 'kim', { records: 40, blobs: 2 }),
    backedUpAccount(net, 'lou', { records: 10, blobs: 1 }),
    backedUpAccount(net, 'mia', { records: 50, blobs: 3 }),
  ]);
  net.setClock(-80 * HOUR);
  await hostileMove(net, lou, 'https://elsewhere.example');
  net.setClock(-1 * HOUR);
  await hostileMove(net, kim, 'https://elsewhere.example');
  net.setClock(0);
  await net.stopOld();
  referenceTarget = await startReferencePds(dir, net.plc.url, { serviceDid: 'did:web:reference-target.test' });
});

after(async () => {
  await referenceTarget?.close();
  await net?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The run's failure sentence (step-failed message and next step). */
function failure(run: Awaited<ReturnType<typeof runCli>>): string {
  const failed = run.events.find((e) => e.type === 'step-failed');
  return failed ? `${String(failed.message)}. ${String(failed.next)}` : run.stderr;
}

/** Asserts nothing changed: the PLC log as it was, and the new server has never heard of the DID. */
async function assertUnchanged(did: string, logLength: number): Promise<void> {
  assert.equal((await auditLog(net, did)).length, logLength, 'the PLC log is unchanged');
  const res = await fetch(`${net.portage.url}/xrpc/com.atproto.sync.getRepoStatus?did=${did}`);
  assert.equal(res.status, 400, 'the new server does not hold the account');
  await res.arrayBuffer();
}

/** A copy of a backup folder the test may damage. */
function copyBackup(account: BackedUpAccount, name: string): string {
  const copy = join(dir, name);
  cpSync(account.backupDir, copy, { recursive: true });
  return copy;
}

describe('portage restore refuses bad input before changing anything', () => {
  it('a backup of another DID', async () => {
    const length = (await auditLog(net, jane.did)).length;
    const run = await runCli(restoreArgs(net, jane, join(dir, 'state-bad1'), ['--did', kim.did]), {
      PORTAGE_NEW_PASSWORD: jane.password,
    });
    assert.equal(run.code, 1);
    assert.match(
      failure(run),
      new RegExp(
        `is of ${jane.did}, not of ${kim.did}\\. Give --backup a backup of the account --did names\\. Nothing was changed`,
      ),
    );
    await assertUnchanged(jane.did, length);
  });

  it('a damaged backup: a block whose bytes do not match, a blob missing, a bad signature', async () => {
    const length = (await auditLog(net, jane.did)).length;
    const flipped = copyBackup(jane, 'flipped');
    const car = readFileSync(join(flipped, 'repo.car'));
    // One letter inside a record's text: the block keeps its framing, its bytes no longer match its CID.
    const inRecord = car.indexOf('xxxxxxxxxx', Math.floor(car.length / 2));
    assert.ok(inRecord > 0);
    car[inRecord] = 'y'.charCodeAt(0);
    writeFileSync(join(flipped, 'repo.car'), car);
    let run = await runCli(restoreArgs(net, { ...jane, backupDir: flipped }, join(dir, 'state-bad2')), {
      PORTAGE_NEW_PASSWORD: jane.password,
    });
    assert.equal(run.code, 1);
    assert.match(
      failure(run),
      new RegExp(`backup of ${jane.did} .* is damaged: a block of repo.car does not match its hash`),
    );
    assert.match(
      failure(run),
      /Use another copy of the backup \(or run `portage backup` again .*\)\. Nothing was changed/,
    );

    const lacking = copyBackup(jane, 'lacking');
    const blob = readdirSync(join(lacking, 'blobs')).find((n) => !n.startsWith('.'))!;
    unlinkSync(join(lacking, 'blobs', blob));
    run = await runCli(restoreArgs(net, { ...jane, backupDir: lacking }, join(dir, 'state-bad3')), {
      PORTAGE_NEW_PASSWORD: jane.password,
    });
    assert.equal(run.code, 1);
    assert.match(
      failure(run),
      new RegExp(`backup of ${jane.did} .*: blob ${blob}, which the record .* references, is missing`),
    );
    await assertUnchanged(jane.did, length);

    // Signed by a key the account never held: refused offline too.
    const stranger = await generateSigningKey('secp256k1');
    await assert.rejects(verifyBackup(jane.backupDir, { signingKeys: [stranger.did()] }), (err: Error) => {
      assert.match(err.message, new RegExp(`backup of ${jane.did} .*commit is not signed by any key`));
      return true;
    });
    const report = await verifyBackup(jane.backupDir);
    assert.ok(report.signedBy, 'portage backup records the signing key, so the backup checks its signature alone');
    assert.equal(report.blobs, 6);
    assert.equal(report.referencedBlobs.length, 6);
  });

  it('a key that is not among the rotation keys', async () => {
    const length = (await auditLog(net, jane.did)).length;
    const stranger = await generateSigningKey('secp256k1');
    const keyFile = join(dir, 'stranger.key');
    writeFileSync(keyFile, `${stranger.privateKeyHex()}\n`, { mode: 0o600 });
    const run = await runCli(restoreArgs(net, { ...jane, keyFile }, join(dir, 'state-bad4')), {
      PORTAGE_NEW_PASSWORD: jane.password,
    });
    assert.equal(run.code, 1);
    assert.match(failure(run), new RegExp(`\\(${stranger.did()}\\) is not one of the rotation keys of ${jane.did}`));
    assert.match(
      failure(run),
      /Give --recovery-key the key file made when the key was added to this account\. Nothing was changed/,
    );

    const noFile = await runCli(
      restoreArgs(net, { ...jane, keyFile: join(dir, 'no-such.key') }, join(dir, 'state-bad4b')),
      { PORTAGE_NEW_PASSWORD: jane.password },
    );
    assert.equal(noFile.code, 1);
    assert.match(
      noFile.stderr,
      /portage restore: there is no key file at .*no-such\.key\. Give --recovery-key the file that holds your rotation key\. Nothing was changed\./,
    );
    await assertUnchanged(jane.did, length);
  });

  it('an operation older than 72 hours to override', async () => {
    const length = (await auditLog(net, lou.did)).length;
    const run = await runCli(restoreArgs(net, lou, join(dir, 'state-bad5')), { PORTAGE_NEW_PASSWORD: lou.password });
    assert.equal(run.code, 1);
    assert.match(
      failure(run),
      new RegExp(`${lou.did} was moved away from your key on .*, 8\\d hours ago; .*only within 72 hours`),
    );
    await assertUnchanged(lou.did, length);
  });
});

describe('portage restore with the old server gone', () => {
  it('restores records, blobs and preferences to Portage, which then hosts the DID', async () => {
    const state = join(dir, 'state-jane');
    const run = await runCli(restoreArgs(net, jane, state), { PORTAGE_NEW_PASSWORD: jane.password });
    assert.equal(run.code, 0, failure(run) + run.stderr);
    await checkRestored(jane);

    // Run again: everything is found done.
    const again = await runCli(restoreArgs(net, jane, state), { PORTAGE_NEW_PASSWORD: jane.password });
    assert.equal(again.code, 0, failure(again));
    assert.equal(again.events.find((e) => e.type === 'step-done' && e.step === 'activate')?.skipped, true);
  });

  it('overrides the old server key that moved the DID elsewhere an hour ago, and says so', async () => {
    const before = await auditLog(net, kim.did);
    const hostile = before.at(-1)!;
    assert.equal(hostile.operation.services?.atproto_pds?.endpoint, 'https://elsewhere.example');
    const run = await runCli(restoreArgs(net, kim, join(dir, 'state-kim')), { PORTAGE_NEW_PASSWORD: kim.password });
    assert.equal(run.code, 0, failure(run) + run.stderr);
    const notice = run.events.find((e) => e.type === 'notice' && e.step === 'claim-identity');
    assert.match(
      String(notice?.message),
      new RegExp(`${hostile.cid}.*ranks above it, so this restore overrides that operation`),
    );
    const log = await auditLog(net, kim.did);
    assert.equal(log.find((e) => e.cid === hostile.cid)?.nullified, true, 'the hostile operation is nullified');
    await checkRestored(kim);
  });

  it('restores to a reference PDS too', async () => {
    const target = { url: referenceTarget.url, publicUrl: referenceTarget.url };
    const args = restoreArgs(net, mia, join(dir, 'state-mia'));
    args[args.indexOf('--to') + 1] = target.url;
    const run = await runCli(args, { PORTAGE_NEW_PASSWORD: mia.password });
    assert.equal(run.code, 0, failure(run) + run.stderr);
    await checkRestored(mia, target);
  });
});

/** Everything a finished restore must show, from outside, on the server it went to (Portage unless named). */
async function checkRestored(
  account: BackedUpAccount,
  target: { url: string; publicUrl: string } = net.portage,
): Promise<void> {
  assert.deepEqual([...(await repoRecords(target.url, account.did))].sort(), [...account.records].sort());
  for (const cid of account.blobCids) {
    const res = await fetch(
      `${target.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
    );
    assert.equal(res.status, 200, `blob ${cid} is on the new server`);
    await res.arrayBuffer();
  }
  const doc = (await (await fetch(`${net.plc.url}/${account.did}/data`)).json()) as {
    rotationKeys: string[];
    services: { atproto_pds: { endpoint: string } };
  };
  assert.equal(doc.services.atproto_pds.endpoint, target.publicUrl, 'the PLC document names the new server');
  assert.equal(doc.rotationKeys[0], account.keyDid, 'the recovery key stays first');

  const cursor = 0;
  const agent = new AtpAgent({ service: target.url });
  await agent.login({ identifier: account.did, password: account.password });
  assert.deepEqual((await agent.app.bsky.actor.getPreferences()).data.preferences, account.preferences);
  assert.equal((await agent.com.atproto.server.checkAccountStatus()).data.activated, true);
  const post = await agent.post({ text: 'back again', createdAt: new Date().toISOString() });

  const isPost = (f: { t: string; body: Record<string, unknown> }) =>
    f.t === '#commit' &&
    f.body.repo === account.did &&
    (f.body.ops as { path: string }[]).some((op) => post.uri.endsWith(op.path));
  const frames = await readFirehose(target.url, cursor, isPost);
  const mine = frames.filter((f) => f.body.did === account.did || f.body.repo === account.did).map((f) => f.t);
  assert.ok(mine.includes('#identity'), `the firehose carries #identity (got ${mine.join(', ')})`);
  assert.ok(mine.includes('#account'), 'the firehose carries #account');
  assert.ok(frames.some(isPost), `the firehose carries the new post (got ${mine.join(', ')})`);
}
