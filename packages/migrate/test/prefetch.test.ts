/**
 * The blob prefetch as the download half of the blob phase, against a real Portage PDS: a blob
 * the blob phase asks for jumps the queue, one already under way or stored is never fetched
 * twice, and one the old server does not have comes back as "not prefetched" so the blob phase
 * fetches (and reports) it itself.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { DirectoryBackup } from '../src/backup.node.ts';
import { BlobPrefetch } from '../src/blobs.ts';
import { sleep } from '../src/retry.ts';
import { PdsSession } from '../src/session.ts';
import { type Account, createAccount } from './helpers/network.ts';

let pds: TestPds;
let dir: string;
let account: Account;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-prefetch-'));
  pds = await startTestPds();
  account = await createAccount(pds, 'carol', { records: 3, blobs: 6 });
});

after(async () => {
  await pds?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A session whose fetch records, in order, the CID of every getBlob it starts; the old server
 * fails every request for the `broken` blob.
 */
function countingSession(downloads: string[], broken?: string): PdsSession {
  return new PdsSession(pds.url, account.did, async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!url.pathname.endsWith('/com.atproto.sync.getBlob')) return fetch(input, init);
    const cid = url.searchParams.get('cid')!;
    downloads.push(cid);
    if (cid === broken) return Response.json({ error: 'BlobNotFound', message: 'gone' }, { status: 404 });
    return fetch(input, init);
  });
}

/** The content type of a blob the prefetch holds or gets (undefined: left to the blob phase). */
async function storedType(prefetch: BlobPrefetch, cid: string): Promise<string | undefined> {
  const copy = await prefetch.fetched(cid);
  copy?.release();
  return copy?.contentType;
}

describe('BlobPrefetch', () => {
  it('leaves a blob whose download failed to the blob phase: the listing does not fetch it again', async () => {
    const { data } = await account.agent.com.atproto.sync.listBlobs({ did: account.did });
    const broken = data.cids.at(-1)!;
    const downloads: string[] = [];
    const old = countingSession(downloads, broken);
    const backup = await new DirectoryBackup(join(dir, 'failed'), account.did).open();
    const prefetch = new BlobPrefetch({ did: account.did, old, backup, concurrency: 1 });
    assert.equal(await storedType(prefetch, broken), undefined);
    const triesWhenAsked = downloads.filter((cid) => cid === broken).length;
    // Let the listing reach the end of the page (every other blob downloaded) before stopping.
    while (new Set(downloads).size < data.cids.length) await sleep(5);
    await prefetch.stop();
    assert.equal(downloads.filter((cid) => cid === broken).length, triesWhenAsked, `requests ${downloads.join(' ')}`);
  });

  it('puts a blob the blob phase waits for first in line, and downloads every blob once', async () => {
    const { data } = await account.agent.com.atproto.sync.listBlobs({ did: account.did });
    const listed = data.cids;
    assert.equal(listed.length, 6);
    const downloads: string[] = [];
    const backup = await new DirectoryBackup(join(dir, 'first'), account.did).open();
    const prefetch = new BlobPrefetch({ did: account.did, old: countingSession(downloads), backup, concurrency: 1 });
    // Once the listing's first download is under way (and its next one waits for the slot), the
    // blob phase asks for the last blob: it goes next, ahead of the listing's own queue.
    while (downloads.length === 0) await sleep(2);
    const last = listed.at(-1)!;
    assert.equal(await storedType(prefetch, last), 'image/jpeg');
    assert.equal(downloads.indexOf(last), 1, `downloaded in order ${downloads.join(' ')}`);
    for (const cid of listed) assert.equal(await storedType(prefetch, cid), 'image/jpeg');
    await prefetch.stop();
    assert.deepEqual([...downloads].sort(), [...listed].sort(), 'each blob downloaded exactly once');
    for (const cid of listed) assert.equal(await backup.hasBlob(cid), true);
  });

  it('answers undefined for a blob the old server does not have, and for any blob once stopped', async () => {
    const downloads: string[] = [];
    const backup = await new DirectoryBackup(join(dir, 'second'), account.did).open();
    const prefetch = new BlobPrefetch({ did: account.did, old: countingSession(downloads), backup, concurrency: 2 });
    const absent = formatCid(cidForRaw(new TextEncoder().encode('never uploaded')));
    assert.equal(await storedType(prefetch, absent), undefined);
    assert.equal(await backup.hasBlob(absent), false);
    await prefetch.stop();

    const stoppedDownloads: string[] = [];
    const stoppedBackup = await new DirectoryBackup(join(dir, 'third'), account.did).open();
    const stopped = new BlobPrefetch({
      did: account.did,
      old: countingSession(stoppedDownloads),
      backup: stoppedBackup,
      concurrency: 2,
    });
    await stopped.stop();
    assert.equal(await storedType(stopped, account.blobCids[0]!), undefined);
    assert.deepEqual(stoppedDownloads, [], 'a stopped prefetch starts no download');
  });

  it('downloads each blob once when the blob phase asks for them one by one while the listing runs', async () => {
    // The blob phase asks in its own order (here the order of upload, not the listing's), so its
    // questions and the listing cross while each side awaits the backup.
    const downloads: string[] = [];
    const backup = await new DirectoryBackup(join(dir, 'crossing'), account.did).open();
    const prefetch = new BlobPrefetch({ did: account.did, old: countingSession(downloads), backup, concurrency: 1 });
    for (const cid of account.blobCids) assert.equal(await storedType(prefetch, cid), 'image/jpeg');
    await prefetch.stop();
    assert.deepEqual([...downloads].sort(), [...account.blobCids].sort(), `downloaded ${downloads.join(' ')}`);
  });
});

describe('BlobPrefetch handing over', () => {
  it('hands the bytes of a download the blob phase waited for over, counted in its budget until released', async () => {
    const downloads: string[] = [];
    const backup = await new DirectoryBackup(join(dir, 'handoff'), account.did).open();
    // A budget of one byte lets one download hold memory at a time.
    const prefetch = new BlobPrefetch({
      did: account.did,
      old: countingSession(downloads),
      backup,
      concurrency: 2,
      inFlightBytes: 1,
    });
    while (downloads.length === 0) await sleep(2);
    const last = account.blobCids.at(-1)!;
    const copy = await prefetch.fetched(last);
    assert.ok(copy?.bytes, 'the awaited download comes with its bytes');
    assert.equal(copy.checked, true);
    assert.equal(formatCid(cidForRaw(copy.bytes)), last);
    assert.equal(await backup.hasBlob(last), true, 'and is stored as well');
    const startedBefore = downloads.length;
    await sleep(100);
    assert.equal(downloads.length, startedBefore, 'no download starts while the handed-over bytes are held');
    copy.release();
    while (downloads.length === startedBefore) await sleep(2);
    await prefetch.stop();

    // A blob an earlier run stored is read from the backup, and checked again before it is sent.
    const later = new BlobPrefetch({ did: account.did, old: countingSession([]), backup, concurrency: 1 });
    const earlier = await later.fetched(last);
    assert.deepEqual(
      { ...earlier, release: undefined },
      { contentType: 'image/jpeg', checked: false, release: undefined },
    );
    earlier!.release();
    await later.stop();
  });
});

describe('BlobPrefetch.complete (the backup step)', () => {
  it('downloads every blob the backup lacks, several at once, and names each one it could not get', async () => {
    const { data } = await account.agent.com.atproto.sync.listBlobs({ did: account.did });
    const [kept, broken] = [data.cids[0]!, data.cids.at(-1)!];
    const backup = await new DirectoryBackup(join(dir, 'complete'), account.did).open();
    // One blob is in the backup already (an earlier run stored it): it is not downloaded again.
    const bytes = new Uint8Array(
      await (await fetch(`${pds.url}/xrpc/com.atproto.sync.getBlob?did=${account.did}&cid=${kept}`)).arrayBuffer(),
    );
    await backup.writeBlob(kept, bytes, 'image/jpeg');
    const downloads: string[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    const old = new PdsSession(pds.url, account.did, async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (!url.pathname.endsWith('/com.atproto.sync.getBlob')) return fetch(input, init);
      const cid = url.searchParams.get('cid')!;
      downloads.push(cid);
      if (cid === broken) return Response.json({ error: 'BlobNotFound', message: 'gone' }, { status: 404 });
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        await sleep(20); // a slow old server: downloads overlap only if they are started together
        return await fetch(input, init);
      } finally {
        inFlight--;
      }
    });
    const { listed, fetched, failed } = await new BlobPrefetch({
      did: account.did,
      old,
      backup,
      concurrency: 4,
    }).complete();
    assert.equal(listed, data.cids.length);
    assert.equal(fetched, data.cids.length - 2, 'all but the one kept and the one the server lacks');
    assert.deepEqual([...failed.keys()], [broken]);
    assert.match(failed.get(broken)!, /no longer has this blob/);
    assert.ok(!downloads.includes(kept), 'the blob already in the backup is not downloaded');
    assert.ok(mostInFlight > 1, `downloads ran one at a time (${mostInFlight} at most)`);
    for (const cid of data.cids) assert.equal(await backup.hasBlob(cid), cid !== broken);
  });

  it('fails when the old server cannot list the blobs', async () => {
    const backup = await new DirectoryBackup(join(dir, 'unlisted'), account.did).open();
    const old = new PdsSession(pds.url, account.did, async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname.endsWith('/com.atproto.sync.listBlobs')) {
        return Response.json({ error: 'InternalServerError', message: 'down' }, { status: 500 });
      }
      return fetch(input, init);
    });
    await assert.rejects(new BlobPrefetch({ did: account.did, old, backup, concurrency: 2 }).complete(), /down/);
  });
});
