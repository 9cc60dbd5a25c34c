/**
 * Both blob stores, disk and S3 (against a real S3-compatible server): streamed hashing gives
 * the same CID as hashing the whole blob, the upload limit stops a stream part-way and leaves
 * nothing, types are sniffed from content, moves to permanent storage are idempotent, the
 * age-based sweep removes only old temporary files, and a move between the stores keeps every
 * blob under its CID.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidForRaw, formatCid, parseCid } from '@portage/atproto/cid';
import { s3ServerMissing, startS3Server, type TestS3Server } from '../../../test/support/s3-server.ts';
import { type BlobStore, BlobTooLargeError } from '../src/blobstore/blobstore.ts';
import { DiskBlobStore } from '../src/blobstore/disk.ts';
import { sniffMimeType } from '../src/blobstore/mime-sniff.ts';
import { moveBlobs } from '../src/blobstore/move.ts';
import { S3BlobStore } from '../src/blobstore/s3.ts';

const did = 'did:plc:blobstoretestaaaaaaaaaaa';

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

interface StoreUnderTest {
  store: BlobStore;
  /** Temporary uploads left in the store. */
  tempEntries(): Promise<string[]>;
  /** Makes a temporary upload look `ageMs` old to the sweep. */
  age(tempKey: string, ageMs: number): Promise<void>;
  close(): Promise<void>;
}

let s3Server: TestS3Server | undefined;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-blobstore-'));
  if (!s3ServerMissing()) s3Server = await startS3Server();
});
after(async () => {
  await s3Server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function diskStore(name: string): StoreUnderTest {
  const store = new DiskBlobStore(join(dir, name, 'blobs'), join(dir, name, 'tmp'));
  return {
    store,
    tempEntries: async () =>
      readdirSync(join(dir, name, 'tmp'), { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => d.name),
    age: async (tempKey, ageMs) => {
      const then = new Date(Date.now() - ageMs);
      utimesSync(join(dir, name, 'tmp', did.replace(/[^a-zA-Z0-9._-]/g, '_'), tempKey), then, then);
    },
    close: async () => {},
  };
}

async function s3Store(name: string): Promise<StoreUnderTest & { store: S3BlobStore }> {
  await s3Server!.createBucket(name);
  const env = s3Server!.env(name);
  const store = new S3BlobStore({
    bucket: name,
    region: env.PDS_BLOBSTORE_S3_REGION,
    endpoint: env.PDS_BLOBSTORE_S3_ENDPOINT,
    forcePathStyle: true,
    accessKeyId: 'test',
    secretAccessKey: 'test',
  });
  // The bucket dates objects itself: make the upload old by waiting until it is.
  return {
    store,
    tempEntries: async () => {
      const keys: string[] = [];
      for await (const object of store.list('tmp/')) keys.push(object.key);
      return keys;
    },
    age: async () => {},
    close: () => store.close(),
  };
}

const kinds: [string, (name: string) => Promise<StoreUnderTest>][] = [
  ['disk', async (name) => diskStore(name)],
  ['s3', s3Store],
];

for (const [kind, open] of kinds) {
  describe(`${kind} blobstore`, { skip: kind === 's3' && s3ServerMissing() }, () => {
    let under: StoreUnderTest;
    let store: BlobStore;
    before(async () => {
      under = await open(`${kind}-basics`);
      store = under.store;
    });
    after(() => under.close());

    it('hashes while streaming to the CID of the whole blob and stores it permanently', async () => {
      const bytes = new Uint8Array(300_000).map((_, i) => (i * 31) % 251);
      const stored = await store.putTemp(did, chunked(bytes, 7777), 1_000_000);
      assert.equal(formatCid(stored.cid), formatCid(cidForRaw(bytes)));
      assert.equal(stored.size, bytes.length);
      assert.equal(await store.hasPermanent(did, stored.cid), false);
      await store.makePermanent(did, stored.tempKey, stored.cid);
      await store.makePermanent(did, stored.tempKey, stored.cid); // a retry after a crash is harmless
      const read = await store.read(did, stored.cid);
      assert.ok(read);
      assert.equal(read.size, bytes.length);
      assert.deepEqual(new Uint8Array(await readAll(read.stream)), bytes);
      await store.delete(did, [stored.cid]);
      assert.equal(await store.read(did, stored.cid), undefined);
    });

    it('stops at the limit part-way through the stream and leaves no file', async () => {
      let pulled = 0;
      async function* endless(): AsyncGenerator<Uint8Array> {
        for (;;) {
          pulled++;
          yield new Uint8Array(1024);
        }
      }
      await assert.rejects(store.putTemp(did, endless(), 10_000), (e: unknown) => e instanceof BlobTooLargeError);
      assert.ok(pulled <= 11, `stopped after ${pulled} chunks`);
      assert.deepEqual(await under.tempEntries(), []);
    });

    it('sniffs common media types and leaves unknown content to the declared type', () => {
      const cases: [number[] | string, string | undefined][] = [
        [[0xff, 0xd8, 0xff, 0xe0, 0, 0x10], 'image/jpeg'],
        [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'image/png'],
        ['GIF89a....', 'image/gif'],
        ['RIFF\u0000\u0000\u0000\u0000WEBPVP8 ', 'image/webp'],
        ['\u0000\u0000\u0000\u0018ftypmp42', 'video/mp4'],
        ['\u0000\u0000\u0000\u0018ftypavif', 'image/avif'],
        [[0x1a, 0x45, 0xdf, 0xa3], 'video/webm'],
        ['just some text', undefined],
      ];
      for (const [head, expected] of cases) {
        const bytes = typeof head === 'string' ? new Uint8Array(Buffer.from(head, 'latin1')) : new Uint8Array(head);
        assert.equal(sniffMimeType(bytes), expected, String(head));
      }
    });

    it('sweeps temporary files by age only', async () => {
      const old = await store.putTemp(did, chunked(new Uint8Array([1, 2, 3]), 3), 100);
      await under.age(old.tempKey, 3600_000);
      // S3 dates objects to the second: the old upload is then past a two-second limit.
      if (kind === 's3') await new Promise((r) => setTimeout(r, 3100));
      const fresh = await store.putTemp(did, chunked(new Uint8Array([4, 5, 6]), 3), 100);
      assert.equal(await store.sweepTemp(kind === 's3' ? 2000 : 60_000), 1);
      assert.equal((await under.tempEntries()).length, 1);
      await store.makePermanent(did, fresh.tempKey, fresh.cid);
      assert.equal(await store.hasPermanent(did, fresh.cid), true);
    });
  });
}

describe('moving blobs between the stores', { skip: s3ServerMissing() }, () => {
  it('moves every blob from disk to S3 and back, verified by CID, and resumes', async () => {
    const disk = diskStore('move-disk');
    const s3 = await s3Store('move-bucket');
    try {
      const cids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const bytes = new Uint8Array(1000 + i * 4000).map((_, j) => (i * 7 + j) % 256);
        const stored = await disk.store.putTemp(did, chunked(bytes, 4096), 1_000_000);
        await disk.store.makePermanent(did, stored.tempKey, stored.cid);
        cids.push(formatCid(stored.cid));
      }
      // An earlier, interrupted run left one blob in both stores.
      const first = await disk.store.read(did, parseCid(cids[0]!));
      const copy = await s3.store.putTemp(did, first!.stream, 1_000_000);
      await s3.store.makePermanent(did, copy.tempKey, copy.cid);
      // A blob whose bytes do not match its name stays where it is.
      const badDir = join(dir, 'move-disk', 'blobs', did.replace(/[^a-zA-Z0-9._-]/g, '_'));
      const badCid = formatCid(cidForRaw(new Uint8Array([9, 9, 9])));
      writeFileSync(join(badDir, badCid), 'not those bytes');

      const there = await moveBlobs(disk.store, s3.store);
      assert.equal(there.moved, 11);
      assert.equal(there.alreadyThere, 1);
      assert.deepEqual(
        there.failed.map((f) => f.cid),
        [badCid],
      );
      for (const cid of cids) {
        assert.equal(await s3.store.hasPermanent(did, parseCid(cid)), true, cid);
        assert.equal(await disk.store.hasPermanent(did, parseCid(cid)), false, cid);
      }
      assert.equal(await disk.store.hasPermanent(did, parseCid(badCid)), true);
      assert.equal(await s3.store.hasPermanent(did, parseCid(badCid)), false);
      rmSync(join(badDir, badCid));

      const back = await moveBlobs(s3.store, disk.store);
      assert.equal(back.moved, 12);
      for (const cid of cids) {
        const read = await disk.store.read(did, parseCid(cid));
        assert.ok(read, cid);
        assert.equal(formatCid(cidForRaw(new Uint8Array(await readAll(read.stream)))), cid);
      }
      const left: unknown[] = [];
      for await (const blob of s3.store.listPermanent()) left.push(blob);
      assert.deepEqual(left, []);
    } finally {
      await s3.close();
    }
  });
});
