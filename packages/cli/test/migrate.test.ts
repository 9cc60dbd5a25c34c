/**
 * `portage migrate` end to end between two reference PDSes sharing one reference PLC, through
 * the real CLI in a child process: the full flow (including the exit-3 wait for the PLC token),
 * the backup, the recovery key, and every bad input stopping before anything changes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyBackup } from '@portage/migrate/backup.node';
import {
  type Account,
  accountPasswordEnv,
  checkMigrated,
  createAccount,
  expirePlcToken,
  migrateCliArgs,
  type Network,
  plcToken,
  runCli,
  snapshot,
  startNetwork,
} from '../../migrate/test/helpers/network.ts';

let net: Network;
let work: string;
let plain: Server;
let plainUrl: string;

before(async () => {
  net = await startNetwork(2);
  work = mkdtempSync(join(net.dir, 'cli-'));
  // A web server that is not a PDS (answers 404 to everything), and also impersonates an old PDS
  // whose resolveHandle lies, for the handle/DID mismatch case.
  plain = createServer((req, res) => {
    if (req.url?.startsWith('/xrpc/com.atproto.identity.resolveHandle')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ did: liarDid }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<h1>not found</h1>');
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((r) => plain.close(() => r()));
  await net.close();
});
let liarDid = '';

function baseArgs(account: Account, extra: string[] = []): string[] {
  const [a, b] = net.pdses;
  return migrateCliArgs(
    {
      from: account.did,
      fromPds: a!.url,
      to: b!.url,
      plcUrl: net.plc.url,
      stateDir: join(work, `state-${account.handle}`),
      backupDir: join(work, `backup-${account.handle}`),
    },
    extra,
  );
}

/** Nothing changed: no account on the new server, the DID still names the old one. */
async function assertUntouched(account: Account): Promise<void> {
  const [a, b] = net.pdses;
  const res = await fetch(`${b!.url}/xrpc/com.atproto.sync.getRepoStatus?did=${account.did}`);
  assert.equal(res.status, 400, 'the new server has no repo for the account');
  const doc = (await (await fetch(`${net.plc.url}/${account.did}`)).json()) as {
    service: { serviceEndpoint: string }[];
  };
  assert.equal(doc.service[0]!.serviceEndpoint, a!.url);
}

function failure(run: Awaited<ReturnType<typeof runCli>>): { message: string; next: string } {
  const failed = run.events.find((e) => e.type === 'step-failed');
  assert.ok(failed, `a step-failed event (stderr: ${run.stderr})`);
  return failed as unknown as { message: string; next: string };
}

describe('portage migrate (two reference PDSes, one PLC)', () => {
  it('moves an account: waits for the PLC token with exit 3, then finishes and verifies', async () => {
    const [a, b] = net.pdses;
    const alice = await createAccount(a!, 'alice', { records: 300, blobs: 12, blobSize: 50_000 });
    const keyFile = join(work, 'alice-recovery.key');

    const first = await runCli(
      baseArgs(alice, ['--from', alice.handle, '--recovery-key', keyFile]),
      accountPasswordEnv(alice),
    );
    assert.equal(first.code, 3, `waits for the PLC token (stderr: ${first.stderr})`);
    const waiting = first.events.find((e) => e.type === 'waiting-for-plc-token');
    assert.ok(waiting);
    assert.match(String(waiting.next), /--plc-token/);
    const done = first.events.filter((e) => e.type === 'step-done').map((e) => e.step);
    assert.deepEqual(done, [
      'resolve',
      'login-old',
      'inspect-new',
      'checks',
      'create-account',
      'repo',
      'blobs',
      'preferences',
      'backup',
      'verify',
    ]);
    assert.ok(first.events.some((e) => e.type === 'step-progress' && e.step === 'blobs'));
    // Nothing irreversible yet: the DID still names the old server.
    const doc = (await (await fetch(`${net.plc.url}/${alice.did}`)).json()) as {
      service: { serviceEndpoint: string }[];
    };
    assert.equal(doc.service[0]!.serviceEndpoint, a!.url);

    const before = await snapshot(a!, alice);
    const token = await plcToken(a!, alice.did);
    assert.ok(token);
    const second = await runCli(
      baseArgs(alice, ['--plc-token', token, '--recovery-key', keyFile]),
      accountPasswordEnv(alice),
    );
    assert.equal(second.code, 0, second.stderr + second.stdout);
    const finished = second.events.find((e) => e.type === 'finished');
    assert.equal(finished?.status, 'done');
    await checkMigrated(net, a!, b!, alice, before);

    // The recovery key: written 0600, shown once, first in the rotation keys.
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    // Shown once: in the run that made it (before the token was requested), never again.
    const notice = first.events.find((e) => e.type === 'notice' && e.secret === true);
    assert.ok(notice, 'the key is shown');
    assert.ok(!second.events.some((e) => e.type === 'notice' && e.secret === true));
    assert.ok(String(notice.message).includes(readFileSync(keyFile, 'utf8').trim()));
    const data = (await (await fetch(`${net.plc.url}/${alice.did}/data`)).json()) as { rotationKeys: string[] };
    const journal = readFileSync(
      join(work, `state-${alice.handle}`, `migration-${alice.did.replace(/:/g, '_')}.json`),
      'utf8',
    );
    const recoveryDid = (JSON.parse(journal) as { recoveryKeyDid: string }).recoveryKeyDid;
    assert.equal(data.rotationKeys[0], recoveryDid);
    // No secrets in the journal.
    assert.ok(!journal.includes(alice.password));
    assert.ok(!journal.includes(token));
    assert.ok(!journal.includes(readFileSync(keyFile, 'utf8').trim()));

    const backup = await verifyBackup(join(work, `backup-${alice.handle}`));
    assert.equal(backup.did, alice.did);
    assert.equal(backup.blobs, alice.blobCids.length);

    // Running again after success changes nothing and says so.
    const again = await runCli(baseArgs(alice), accountPasswordEnv(alice));
    assert.equal(again.code, 0, again.stderr);
    await checkMigrated(net, a!, b!, alice, before);
  });

  it('stops before changing anything on an unknown handle', async () => {
    const [a, b] = net.pdses;
    const run = await runCli(
      migrateCliArgs({
        from: 'nobody.test',
        fromPds: a!.url,
        to: b!.url,
        plcUrl: net.plc.url,
        stateDir: join(work, 'x1'),
      }),
      { PORTAGE_OLD_PASSWORD: 'x' },
    );
    assert.equal(run.code, 1);
    const f = failure(run);
    assert.match(f.message, /no account found for the handle nobody\.test/);
    assert.match(f.next, /Nothing was changed/);
  });

  it('stops before changing anything on a wrong password', async () => {
    const [a] = net.pdses;
    const bob = await createAccount(a!, 'bob', { records: 5, blobs: 1 });
    const run = await runCli(baseArgs(bob), accountPasswordEnv(bob, { PORTAGE_OLD_PASSWORD: 'wrong-password' }));
    assert.equal(run.code, 1);
    const f = failure(run);
    assert.match(f.message, /refused the password/);
    assert.match(f.next, /PORTAGE_OLD_PASSWORD/);
    await assertUntouched(bob);
  });

  it('stops before changing anything when the target is not a PDS', async () => {
    const [a] = net.pdses;
    const carol = await createAccount(a!, 'carol', { records: 5, blobs: 1 });
    const args = baseArgs(carol);
    args[args.indexOf('--to') + 1] = plainUrl;
    const run = await runCli(args, accountPasswordEnv(carol));
    assert.equal(run.code, 1);
    const f = failure(run);
    assert.match(f.message, /does not answer as an AT Protocol PDS/);
    assert.match(f.next, /--to/);
    await assertUntouched(carol);
  });

  it('stops before changing anything when the target requires an invite code', async () => {
    const [a] = net.pdses;
    const gated = await net.addPds({ inviteRequired: true });
    const dave = await createAccount(a!, 'dave', { records: 5, blobs: 1 });
    const args = baseArgs(dave);
    args[args.indexOf('--to') + 1] = gated.url;
    const run = await runCli(args, accountPasswordEnv(dave));
    assert.equal(run.code, 1);
    const f = failure(run);
    assert.match(f.message, /requires an invite code/);
    assert.match(f.next, /--invite-code/);
    const res = await fetch(`${gated.url}/xrpc/com.atproto.sync.getRepoStatus?did=${dave.did}`);
    assert.equal(res.status, 400);
  });

  it('on an expired PLC token, has a new one emailed without moving the identity, then finishes with it', async () => {
    const [a, b] = net.pdses;
    const erin = await createAccount(a!, 'erin', { records: 5, blobs: 1 });
    const first = await runCli(baseArgs(erin), accountPasswordEnv(erin));
    assert.equal(first.code, 3, first.stderr);
    const token = await plcToken(a!, erin.did);
    await expirePlcToken(a!, erin.did);
    const run = await runCli(baseArgs(erin, ['--plc-token', token!]), accountPasswordEnv(erin));
    assert.equal(run.code, 3, run.stderr);
    const refused = run.events.find(
      (e) => e.type === 'notice' && /did not accept the PLC token/.test(String(e.message)),
    );
    assert.ok(refused, 'the refusal is explained');
    assert.match(String(refused.message), /emailed a new confirmation code/);
    const waiting = run.events.find((e) => e.type === 'waiting-for-plc-token');
    assert.match(String(waiting?.next), /--plc-token/);
    const doc = (await (await fetch(`${net.plc.url}/${erin.did}`)).json()) as {
      service: { serviceEndpoint: string }[];
    };
    assert.equal(doc.service[0]!.serviceEndpoint, a!.url, 'the identity did not move');
    const status = await erin.agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.activated, true, 'the old account is still active');
    const res = await fetch(`${b!.url}/xrpc/com.atproto.sync.getRepoStatus?did=${erin.did}`);
    assert.equal(((await res.json()) as { active: boolean }).active, false, 'the new account is not active');

    const fresh = await plcToken(a!, erin.did);
    assert.ok(fresh && fresh !== token, 'a new code was emailed');
    const last = await runCli(baseArgs(erin, ['--plc-token', fresh]), accountPasswordEnv(erin));
    assert.equal(last.code, 0, last.stderr);
  });

  it('stops before changing anything when the DID does not match the handle', async () => {
    const [a, b] = net.pdses;
    const frank = await createAccount(a!, 'frank', { records: 2, blobs: 0 });
    const grace = await createAccount(a!, 'grace', { records: 2, blobs: 0 });
    liarDid = grace.did; // the "old server" claims frank.test is grace's DID
    const run = await runCli(
      migrateCliArgs({
        from: frank.handle,
        fromPds: plainUrl,
        to: b!.url,
        plcUrl: net.plc.url,
        stateDir: join(work, 'x2'),
      }),
      accountPasswordEnv(frank),
    );
    assert.equal(run.code, 1);
    const f = failure(run);
    assert.match(f.message, /names the handle grace\.test/);
    assert.match(f.next, /Nothing was changed/);
    await assertUntouched(grace);
    await assertUntouched(frank);
  });

  it('rejects bad usage with exit code 2', async () => {
    const missing = await runCli(['migrate', '--to', 'http://127.0.0.1:1'], {});
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--from is required/);
    const unknown = await runCli(['migrate', '--from', 'x', '--to', 'y', '--password', 'z'], {});
    assert.equal(unknown.code, 2);
    const noPassword = await runCli(['migrate', '--from', 'a.test', '--to', 'http://127.0.0.1:1'], {
      PORTAGE_OLD_PASSWORD: '',
    });
    assert.equal(noPassword.code, 2);
    assert.match(noPassword.stderr, /PORTAGE_OLD_PASSWORD/);
    for (const [flag, value] of [
      ['--to', 'blob:https://example.com/abc'],
      ['--from-pds', 'ftp://example.com'],
      ['--plc-url', 'plc.directory'],
    ] as const) {
      const args = ['migrate', '--from', 'a.test', '--to', 'http://127.0.0.1:1', flag, value];
      const badUrl = await runCli(args, { PORTAGE_OLD_PASSWORD: 'x' });
      assert.equal(badUrl.code, 2, `${flag} ${value}`);
      assert.match(badUrl.stderr, new RegExp(`${flag} must be an http\\(s\\) URL`));
    }
    assert.ok(!existsSync(join(work, 'never')));
  });
});

void rmSync;
