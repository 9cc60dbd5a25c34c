/**
 * `portage doctor` on accounts left half-moved between two Portage servers sharing one PLC
 * directory: by the migration engine stopped at a step (waiting for the emailed code; the new
 * server refusing activation; the old one refusing deactivation), and by another tool's half
 * move made here with raw XRPC calls (repo imported and blobs skipped with both accounts left
 * deactivated; the DID moved before the repo was imported). Each gets the right diagnosis, and
 * `--fix` leaves an account that signs in where the DID points and holds every record and blob.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { backupAccount } from '@portage/migrate/backup-run';
import { DirectoryBackup } from '@portage/migrate/backup.node';
import { migrate } from '@portage/migrate/engine';
import { DirectoryStorage } from '@portage/migrate/storage.node';
import { outboxToken, startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { rawMove, type Servers } from '../../migrate/test/helpers/raw-move.ts';
import {
  type Account,
  createAccount,
  type Network,
  plcToken,
  repoRecords,
  runCli,
  startNetwork,
} from '../../migrate/test/helpers/network.ts';

type ReferencePds = Network['pdses'][number];

const OLD_DID = 'did:web:doctor-old.test';
const NEW_DID = 'did:web:doctor-new.test';
let oldPds: TestPds;
let newPds: TestPds;
let dir: string;
let net: Network;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-doctor-'));
  // The reference peers start while the Portage servers do.
  const reference = startNetwork(2);
  oldPds = await startTestPds({ env: { PDS_SERVICE_DID: OLD_DID } });
  newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: NEW_DID } });
  net = await reference;
});

after(async () => {
  await net?.close().catch(() => {});
  await newPds?.close().catch(() => {});
  await oldPds?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface DoctorReport {
  healthy: boolean;
  before: {
    summary: string;
    findings: { code: string; severity: string; next?: string; nextStep?: { kind: string; did?: string } }[];
    repairs: string[];
  };
  repair?: { done: string[]; stopped?: string };
  after?: { findings: { code: string }[] };
}

async function doctor(
  account: Account,
  extra: string[] = [],
  plcUrl = oldPds.plcUrl,
): Promise<{ code: number | null; report: DoctorReport; stderr: string }> {
  const run = await runCli(['doctor', '--from', account.did, '--plc-url', plcUrl, '--json', ...extra], {
    PORTAGE_PASSWORD: account.password,
  });
  const line = run.stdout.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `doctor printed a report: ${run.stderr}${run.stdout}`);
  return { code: run.code, report: JSON.parse(line) as DoctorReport, stderr: run.stderr };
}

const problems = (r: DoctorReport['before']) =>
  r.findings
    .filter((f) => f.severity === 'problem')
    .map((f) => f.code)
    .sort();

/** The PDS the PLC document names now. */
async function plcPds(did: string, plcUrl = oldPds.plcUrl): Promise<string> {
  const doc = (await (await fetch(`${plcUrl}/${did}`)).json()) as { service: { serviceEndpoint: string }[] };
  return doc.service[0]!.serviceEndpoint;
}

/** Every check a usable account passes on `pds`: signs in, active, same records, every blob. */
async function assertWorksOn(
  pds: { url: string; publicUrl: string },
  account: Account,
  records: Map<string, string>,
  plcUrl = oldPds.plcUrl,
): Promise<void> {
  assert.equal(await plcPds(account.did, plcUrl), pds.publicUrl, 'the DID points at that server');
  const agent = new AtpAgent({ service: pds.url });
  await agent.login({ identifier: account.did, password: account.password });
  const status = await agent.com.atproto.server.checkAccountStatus();
  assert.equal(status.data.activated, true, 'active where the DID points');
  assert.deepEqual([...(await repoRecords(pds.url, account.did))].sort(), [...records].sort(), 'every record');
  for (const cid of account.blobCids) {
    const res = await fetch(
      `${pds.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
    );
    assert.equal(res.status, 200, `blob ${cid} is there`);
    await res.arrayBuffer();
  }
}

async function isActive(pds: { url: string }, account: Account): Promise<boolean> {
  const res = await fetch(
    `${pds.url}/xrpc/com.atproto.sync.getRepoStatus?${new URLSearchParams({ did: account.did })}`,
  );
  return ((await res.json()) as { active: boolean }).active;
}

/** A fetch that answers `nsid` on `server` with a refusal, as a server that will not do it. */
function refusing(server: string, nsid: string): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.origin === new URL(server).origin && url.pathname === `/xrpc/${nsid}`) {
      return Response.json({ error: 'InvalidRequest', message: 'refused for the test' }, { status: 400 });
    }
    return fetch(input, init);
  };
}

/** Runs the real engine from the old to the new server; `fetchImpl` stops it where it refuses. */
function migrateWith(account: Account, email: string, fetchImpl: typeof fetch, giveToken = true) {
  return migrate(
    { from: account.did, fromPds: oldPds.url, to: newPds.url, plcUrl: oldPds.plcUrl },
    {
      storage: new DirectoryStorage(join(dir, 'state')),
      fetch: fetchImpl,
      credentials: {
        oldPassword: async () => account.password,
        newPassword: async () => account.password,
        authFactorToken: async () => undefined,
        plcToken: async (requested) =>
          requested && giveToken ? outboxToken(oldPds.ctx.mailer.outboxPath, email) : undefined,
      },
      onEvent: () => {},
    },
  );
}

function portageServers(): Servers {
  return {
    oldUrl: oldPds.url,
    newUrl: newPds.url,
    newDid: NEW_DID,
    plcToken: async (_did, email) => outboxToken(oldPds.ctx.mailer.outboxPath, email),
  };
}

describe('portage doctor', () => {
  it('a migration waiting for the emailed code: the account still works where it was; nothing to fix', async () => {
    const ann = await createAccount(oldPds, 'ann', { records: 10, blobs: 2 });
    const result = await migrateWith(ann, 'ann@example.com', fetch, false);
    assert.equal(result.status, 'waiting-for-plc-token');
    const { code, report } = await doctor(ann, ['--to', newPds.url]);
    assert.equal(code, 0);
    assert.deepEqual(problems(report.before), []);
    const unfinished = report.before.findings.find((f) => f.code === 'move-unfinished');
    assert.ok(unfinished);
    // The engine's typed step, and the command line that finishes the move, worded by the CLI.
    assert.equal(unfinished.nextStep?.kind, 'finish-move');
    assert.equal(unfinished.nextStep?.did, ann.did);
    assert.match(unfinished.next!, new RegExp(`run \`portage migrate --from ${ann.did} --to http://[^\`]+\``));
    assert.equal(await plcPds(ann.did), oldPds.publicUrl);
  });

  it('a migration stopped before activation: activates the new account and deactivates the old', async () => {
    const bea = await createAccount(oldPds, 'bea', { records: 12, blobs: 2 });
    const records = await repoRecords(oldPds.url, bea.did);
    const result = await migrateWith(
      bea,
      'bea@example.com',
      refusing(newPds.url, 'com.atproto.server.activateAccount'),
    );
    assert.equal(result.status, 'failed');
    const seen = await doctor(bea);
    assert.equal(seen.code, 1);
    assert.deepEqual(problems(seen.report.before), ['current-inactive', 'other-still-active']);
    assert.deepEqual(seen.report.before.repairs, ['activate-current', 'deactivate-other']);
    assert.equal(await isActive(newPds, bea), false, 'without --fix nothing changes');

    const fixed = await doctor(bea, ['--fix']);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    await assertWorksOn(newPds, bea, records);
    assert.equal(await isActive(oldPds, bea), false, 'the old account is deactivated');
  });

  it('a migration stopped before the old account was deactivated: deactivates it', async () => {
    const cai = await createAccount(oldPds, 'cai', { records: 5, blobs: 1 });
    const records = await repoRecords(oldPds.url, cai.did);
    const result = await migrateWith(
      cai,
      'cai@example.com',
      refusing(oldPds.url, 'com.atproto.server.deactivateAccount'),
    );
    assert.equal(result.status, 'done-old-still-active');
    const seen = await doctor(cai);
    assert.deepEqual(problems(seen.report.before), ['other-still-active']);
    const fixed = await doctor(cai, ['--fix']);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    await assertWorksOn(newPds, cai, records);
    assert.equal(await isActive(oldPds, cai), false);
  });

  it("another tool's move: blobs skipped, DID moved, both accounts deactivated", async () => {
    const dov = await createAccount(oldPds, 'dov', { records: 15, blobs: 3 });
    const records = await repoRecords(oldPds.url, dov.did);
    await rawMove(
      dov,
      'dov@example.com',
      {
        importRepo: true,
        blobs: false,
        plc: true,
        activateNew: false,
        deactivateOld: true,
      },
      portageServers(),
    );
    const seen = await doctor(dov);
    assert.equal(seen.code, 1);
    assert.deepEqual(problems(seen.report.before), ['blobs-missing', 'both-deactivated', 'current-inactive']);
    assert.match(seen.report.before.summary, /locked out/);

    const fixed = await doctor(dov, ['--fix']);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    await assertWorksOn(newPds, dov, records);
    assert.equal(await isActive(oldPds, dov), false);
  });

  it("another tool's move that deactivated the old account before the PLC update: reactivates it", async () => {
    const jo = await createAccount(oldPds, 'joan', { records: 8, blobs: 1 });
    const records = await repoRecords(oldPds.url, jo.did);
    await rawMove(
      jo,
      'joan@example.com',
      {
        importRepo: true,
        blobs: true,
        plc: false,
        activateNew: false,
        deactivateOld: true,
      },
      portageServers(),
    );
    const seen = await doctor(jo, ['--to', newPds.url]);
    assert.equal(seen.code, 1);
    assert.deepEqual(problems(seen.report.before), ['both-deactivated', 'current-inactive']);
    assert.deepEqual(
      seen.report.before.repairs,
      ['activate-current'],
      'the DID was never moved: the old one comes back',
    );
    const fixed = await doctor(jo, ['--to', newPds.url, '--fix']);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    await assertWorksOn(oldPds, jo, records);
    assert.equal(await isActive(newPds, jo), false, 'the unfinished copy stays deactivated');
  });

  it("another tool's move: DID moved before the repo was imported; repaired from a backup", async () => {
    const eli = await createAccount(oldPds, 'eli', { records: 20, blobs: 2 });
    const records = await repoRecords(oldPds.url, eli.did);
    const backupDir = join(dir, 'eli-backup');
    const backup = await backupAccount(
      { from: eli.did, pds: oldPds.url, plcUrl: oldPds.plcUrl },
      { onEvent: () => {}, openBackup: (did) => new DirectoryBackup(backupDir, did).open() },
    );
    assert.equal(backup.status, 'done', backup.message);
    await rawMove(
      eli,
      'eli@example.com',
      {
        importRepo: false,
        blobs: false,
        plc: true,
        activateNew: false,
        deactivateOld: false,
      },
      portageServers(),
    );
    const text = await runCli(['doctor', '--from', eli.did, '--plc-url', oldPds.plcUrl], {
      PORTAGE_PASSWORD: eli.password,
    });
    assert.equal(text.code, 1);
    assert.match(text.stdout, /no records/);
    assert.match(text.stdout, /still active after the move/);
    assert.match(text.stdout, /--fix/);

    const fixed = await doctor(eli, ['--fix', '--backup', backupDir]);
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    assert.deepEqual(fixed.report.before.repairs, ['import-repo', 'activate-current', 'deactivate-other']);
    assert.ok(fixed.report.repair?.done.some((d) => /from the backup/.test(d)));
    await assertWorksOn(newPds, eli, records);
    assert.equal(await isActive(oldPds, eli), false);
  });

  it("another tool's move between reference PDSes: blobs skipped, both deactivated", async () => {
    {
      const [from, to] = net.pdses as [ReferencePds, ReferencePds];
      const ivy = await createAccount(from, 'ivy', { records: 10, blobs: 2 });
      const records = await repoRecords(from.url, ivy.did);
      await rawMove(
        ivy,
        'ivy@example.com',
        { importRepo: true, blobs: false, plc: true, activateNew: false, deactivateOld: true },
        { oldUrl: from.url, newUrl: to.url, newDid: to.ctx.cfg.service.did, plcToken: (did) => plcToken(from, did) },
      );
      const seen = await doctor(ivy, [], net.plc.url);
      assert.equal(seen.code, 1);
      assert.deepEqual(problems(seen.report.before), ['blobs-missing', 'both-deactivated', 'current-inactive']);
      const fixed = await doctor(ivy, ['--fix'], net.plc.url);
      assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
      await assertWorksOn({ url: to.url, publicUrl: to.url }, ivy, records, net.plc.url);
      assert.equal(await isActive(from, ivy), false);
    }
  });

  it('bad usage and an unknown DID', async () => {
    const usage = await runCli(['doctor'], {});
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--from is required/);
    const unknown = await runCli(
      ['doctor', '--from', 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', '--plc-url', oldPds.plcUrl],
      {},
    );
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /portage doctor: .*Check the spelling of --from \(and --plc-url/);
    const noBackup = await runCli(['doctor', '--from', 'did:plc:x', '--backup', join(dir, 'nothing-here')], {});
    assert.equal(noBackup.code, 2);
    assert.match(noBackup.stderr, /there is no backup in/);
    assert.equal(existsSync(join(dir, 'nothing-here')), false, 'a mistyped folder is not created');
  });
});
