/** `portage backup` against a reference PDS: a full first run, then only what changed. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyBackup } from '@portage/migrate/backup.node';
import { createAccount, type Network, repoRecords, runCli, startNetwork } from '../../migrate/test/helpers/network.ts';

/** The records of a backup's repo.car, verified as the reference verifies an export. */
async function backupRecords(dir: string, did: string): Promise<Map<string, string>> {
  const { verifyRepoCar } = await import('@atproto/repo');
  const repo = await verifyRepoCar(new Uint8Array(readFileSync(join(dir, 'repo.car'))), did);
  return new Map(repo.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
}

let net: Network;
before(async () => {
  net = await startNetwork(1);
});
after(() => net.close());

describe('portage backup', () => {
  it('saves repo, blobs and preferences, then fetches only what changed', async () => {
    const [a] = net.pdses;
    const jane = await createAccount(a!, 'jane', { records: 50, blobs: 4 });
    const out = join(net.dir, 'jane-backup');
    const args = [
      'backup',
      '--from',
      jane.handle,
      '--from-pds',
      a!.url,
      '--plc-url',
      net.plc.url,
      '--out',
      out,
      '--json',
    ];
    const env = { PORTAGE_PASSWORD: jane.password };

    const first = await runCli(args, env);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    let report = await verifyBackup(out);
    assert.equal(report.did, jane.did);
    assert.equal(report.blobs, 4);
    const prefs = JSON.parse(readFileSync(join(out, 'preferences.json'), 'utf8')) as { preferences: unknown[] };
    assert.equal(prefs.preferences.length, 2);

    const unchanged = await runCli(args, env);
    assert.equal(unchanged.code, 0);
    const repoDone = unchanged.events.find((e) => e.type === 'step-done' && e.step === 'repo');
    assert.equal(repoDone?.skipped, true, 'an unchanged repo is not fetched again');
    const blobsDone = unchanged.events.find((e) => e.type === 'step-done' && e.step === 'blobs');
    assert.equal(blobsDone?.skipped, true, 'no blob is listed when the repository did not change');

    const { data } = await jane.agent.com.atproto.repo.uploadBlob(randomBytes(5000), { encoding: 'image/png' });
    await jane.agent.com.atproto.repo.createRecord({
      repo: jane.did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
    });
    const changed = await runCli(args, env);
    assert.equal(changed.code, 0);
    assert.match(
      String(changed.events.find((e) => e.type === 'step-done' && e.step === 'repo')?.summary),
      /^saved the changes since rev /,
      'only the changes were fetched, and they completed the stored repository',
    );
    assert.match(
      String(changed.events.find((e) => e.type === 'step-done' && e.step === 'blobs')?.summary),
      /^1 new of 1 blobs added since rev /,
    );
    assert.deepEqual(await backupRecords(out, jane.did), await repoRecords(a!.url, jane.did), 'the same records');
    report = await verifyBackup(out);
    assert.equal(report.blobs, 5);
  });

  it('refuses a folder holding another account, and bad usage', async () => {
    const [a] = net.pdses;
    const kim = await createAccount(a!, 'kim', { records: 2, blobs: 0 });
    const out = join(net.dir, 'jane-backup');
    const run = await runCli(
      ['backup', '--from', kim.did, '--from-pds', a!.url, '--plc-url', net.plc.url, '--out', out, '--json'],
      {},
    );
    assert.equal(run.code, 1);
    assert.match(String(run.events.find((e) => e.type === 'step-failed')?.message), /holds the account/);
    const usage = await runCli(['backup'], {});
    assert.equal(usage.code, 2);
    const badUrl = await runCli(['backup', '--from', kim.did, '--from-pds', 'file:///srv/pds'], {});
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /--from-pds must be an http\(s\) URL/);
  });
});
