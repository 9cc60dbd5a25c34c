/**
 * `portage backup --every`: a scheduled backup of an account on Portage, seen through a proxy
 * that records every request. The first round fetches everything; after new records and a blob,
 * later rounds ask only for what changed (getRepo and listBlobs with `since` = the stored
 * revision, one getBlob) and rounds with nothing new fetch no repository at all. The backup then
 * verifies and holds exactly the server's records and blobs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readRepoHead } from '@portage/migrate/backup-merge';
import { verifyBackup } from '@portage/migrate/backup.node';
import { sleep } from '@portage/migrate/retry';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { forward, listenOnLoopback } from '../../migrate/test/helpers/fault-proxy.ts';
import { createAccount, repoRecords, spawnCli } from '../../migrate/test/helpers/network.ts';

let pds: TestPds;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-backup-every-'));
  pds = await startTestPds();
});

after(async () => {
  await pds?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The records of a backup's repo.car, verified as the reference verifies an export. */
async function backupRecords(out: string, did: string): Promise<Map<string, string>> {
  const { verifyRepoCar } = await import('@atproto/repo');
  const repo = await verifyRepoCar(new Uint8Array(readFileSync(join(out, 'repo.car'))), did);
  return new Map(repo.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
}

async function until(what: string, check: () => Promise<boolean> | boolean, output: () => string): Promise<void> {
  for (let waited = 0; !(await check()); waited += 100) {
    if (waited > 60_000) throw new Error(`${what} did not happen: ${output()}`);
    await sleep(100);
  }
}

describe('portage backup --every', () => {
  it('keeps a backup current, fetching only what changed', async () => {
    const hal = await createAccount(pds, 'hal', { records: 40, blobs: 3 });
    const requests: URL[] = [];
    const to = new URL(pds.url);
    const proxy = await listenOnLoopback(
      createServer((req, res) => {
        requests.push(new URL(req.url!, to));
        forward(to, req, res);
      }),
    );
    const out = join(dir, 'hal-backup');
    const child = spawnCli(
      [
        'backup',
        '--from',
        hal.did,
        '--from-pds',
        proxy.url,
        '--plc-url',
        pds.plcUrl,
        '--out',
        out,
        '--every',
        '1s',
        '--json',
      ],
      { PORTAGE_PASSWORD: hal.password },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const finished = () => output.split('\n').filter((l) => l.includes('"type":"finished"'));
    const calls = (nsid: string, from = 0) => requests.slice(from).filter((u) => u.pathname === `/xrpc/${nsid}`);
    try {
      await until(
        'the first round',
        () => finished().length >= 1,
        () => output,
      );
      assert.match(finished()[0]!, /"status":"done"/);
      const firstRepo = calls('com.atproto.sync.getRepo');
      assert.equal(firstRepo.length, 1);
      assert.equal(firstRepo[0]!.searchParams.has('since'), false, 'the first round fetches the whole repository');
      assert.equal(calls('com.atproto.sync.getBlob').length, 3);
      const firstRev = (await readRepoHead(readFileSync(join(out, 'repo.car')))).rev;

      // Rounds with nothing new ask for the head and stop there.
      const quietFrom = requests.length;
      const roundsBefore = finished().length;
      await until(
        'two quiet rounds',
        () => finished().length >= roundsBefore + 2,
        () => output,
      );
      assert.equal(calls('com.atproto.sync.getRepo', quietFrom).length, 0, 'an unchanged repository is not fetched');
      assert.equal(calls('com.atproto.sync.listBlobs', quietFrom).length, 0, 'nor are its blobs listed');

      const changesFrom = requests.length;
      const { data } = await hal.agent.com.atproto.repo.uploadBlob(randomBytes(30_000), { encoding: 'image/png' });
      await hal.agent.com.atproto.repo.createRecord({
        repo: hal.did,
        collection: 'com.example.file',
        validate: false,
        record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
      });
      for (let i = 0; i < 5; i++) {
        await hal.agent.com.atproto.repo.createRecord({
          repo: hal.did,
          collection: 'com.example.note',
          validate: false,
          record: { $type: 'com.example.note', text: `later ${i}`, createdAt: new Date().toISOString() },
        });
      }
      const { data: latest } = await hal.agent.com.atproto.sync.getLatestCommit({ did: hal.did });
      await until(
        'a round with the changes',
        async () => {
          const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { blobsCompleteAt?: string };
          const head = await readRepoHead(readFileSync(join(out, 'repo.car'))).catch(() => undefined);
          return head?.commit === latest.cid && manifest.blobsCompleteAt === latest.rev;
        },
        () => output,
      );

      const repoCalls = calls('com.atproto.sync.getRepo', changesFrom);
      assert.ok(repoCalls.length >= 1);
      assert.ok(
        repoCalls.every((u) => u.searchParams.has('since')),
        'later rounds ask only for the changes',
      );
      assert.equal(repoCalls[0]!.searchParams.get('since'), firstRev, 'since the revision the backup holds');
      assert.ok(calls('com.atproto.sync.listBlobs', changesFrom).every((u) => u.searchParams.has('since')));
      assert.deepEqual(
        calls('com.atproto.sync.getBlob', changesFrom).map((u) => u.searchParams.get('cid')),
        [data.blob.ref.toString()],
        'only the new blob is downloaded',
      );
    } finally {
      child.kill('SIGINT');
      assert.equal(await exited, 0, output);
      await proxy.close();
    }

    const report = await verifyBackup(out);
    assert.equal(report.blobs, 4);
    assert.deepEqual(await backupRecords(out, hal.did), await repoRecords(pds.url, hal.did), 'the same records');
  });

  it('refuses an interval it cannot read', async () => {
    const { runCli } = await import('../../migrate/test/helpers/network.ts');
    const bad = await runCli(['backup', '--from', 'did:plc:x', '--every', 'often'], {});
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--every takes a number and a unit/);
  });
});
