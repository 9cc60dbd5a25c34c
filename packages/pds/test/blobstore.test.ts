/**
 * The disk blobstore: streamed hashing gives the same CID as hashing the whole blob, the upload
 * limit stops a stream part-way and leaves nothing, types are sniffed from content, moves to
 * permanent storage are idempotent, and the age-based sweep removes only old temporary files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { BlobTooLargeError } from '../src/blobstore/blobstore.ts';
import { DiskBlobStore } from '../src/blobstore/disk.ts';
import { sniffMimeType } from '../src/blobstore/mime-sniff.ts';

const did = 'did:plc:blobstoretestaaaaaaaaaaa';

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

describe('disk blobstore', () => {
  let dir: string;
  let store: DiskBlobStore;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portage-blobstore-'));
    store = new DiskBlobStore(join(dir, 'blobs'), join(dir, 'tmp'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

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
    assert.deepEqual(
      readdirSync(join(dir, 'tmp'), { recursive: true, withFileTypes: true }).filter((d) => d.isFile()),
      [],
    );
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
    const fresh = await store.putTemp(did, chunked(new Uint8Array([4, 5, 6]), 3), 100);
    const oldPath = join(dir, 'tmp', did.replace(/[^a-zA-Z0-9._-]/g, '_'), old.tempKey);
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(oldPath, hourAgo, hourAgo);
    assert.equal(await store.sweepTemp(60_000), 1);
    assert.equal(existsSync(oldPath), false);
    await store.makePermanent(did, fresh.tempKey, fresh.cid);
    assert.equal(await store.hasPermanent(did, fresh.cid), true);
  });
});
