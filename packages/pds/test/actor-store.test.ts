/**
 * The actor store on its own (no HTTP): repositories created and written through it verify with
 * the reference implementation's @atproto/repo, hold exactly the records the index lists, and
 * bad writes change nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyProofs, verifyRepoCar } from '@atproto/repo';
import Database from 'better-sqlite3';
import { formatCid, parseCid } from '@portage/atproto/cid';
import { type ExportableSigningKey, generateSigningKey } from '@portage/atproto/crypto';
import { ActorStore, ActorStoreError } from '../src/actor-store/actor-store.ts';
import type { SqliteDb } from '../src/actor-store/db.ts';
import { prepareWrites, type WriteRequest, WriteRequestError } from '../src/actor-store/prepare-writes.ts';
import type { CommitEvent } from '../src/actor-store/types.ts';
import { DiskBlobStore } from '../src/blobstore/disk.ts';
import { encodeEventCar } from '../src/sequencer/event-car.ts';
import { commitEventBody } from '../src/sequencer/events.ts';

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* single(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

const did = 'did:plc:abcdefghijklmnopqrstuvwx';
const item = (n: number) => ({ $type: 'com.example.item', n });
const post = (text: string) => ({ $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() });

describe('actor store', () => {
  let dir: string;
  let store: ActorStore;
  let key: ExportableSigningKey;
  const events: CommitEvent[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-actor-store-'));
    store = new ActorStore({ directory: join(dir, 'actors'), blobstore: new DiskBlobStore(join(dir, 'blobs')) });
    store.onCommit((e) => events.push(e));
    key = await generateSigningKey();
    await store.create(did, key);
  });
  after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function write(writes: WriteRequest[], swapCommit?: string) {
    return store.applyWrites(did, prepareWrites(writes), swapCommit ? { swapCommit: parseCid(swapCommit) } : {});
  }

  async function verifiedRecords(): Promise<Map<string, string>> {
    const car = await collect(store.exportCar(did));
    const verified = await verifyRepoCar(car, did, key.did());
    const out = new Map<string, string>();
    for (const w of verified.creates) out.set(`${w.collection}/${w.rkey}`, w.cid.toString());
    return out;
  }

  function indexedRecords(): Map<string, string> {
    const out = new Map<string, string>();
    for (const collection of store.listCollections(did)) {
      const { records } = store.listRecords(did, collection, { limit: 100_000 });
      for (const r of records) out.set(r.uri.split('/').slice(3).join('/'), r.cid);
    }
    return out;
  }

  it('creates a repository whose first commit verifies and which a second create refuses', async () => {
    assert.ok(store.exists(did));
    const car = await collect(store.exportCar(did));
    const verified = await verifyRepoCar(car, did, key.did());
    assert.equal(verified.creates.length, 0);
    await assert.rejects(
      store.create(did, key),
      (e: unknown) => e instanceof ActorStoreError && e.code === 'RepoAlreadyExists',
    );
  });

  it('applies creates, updates and deletes; the export verifies and matches the index', async () => {
    const writes: WriteRequest[] = [];
    for (let i = 0; i < 150; i++)
      writes.push({ action: 'create', collection: 'app.bsky.feed.post', record: post(`post ${i}`) });
    writes.push({
      action: 'create',
      collection: 'com.example.thing',
      rkey: 'self',
      record: { $type: 'com.example.thing', n: 1 },
    });
    const first = await write(writes);
    assert.equal(first.results.length, 151);
    assert.equal(first.results[0].validationStatus, 'valid');
    assert.equal(first.results[150].validationStatus, 'unknown');

    const listed = store.listRecords(did, 'app.bsky.feed.post', { limit: 10 });
    const [victim, updated] = listed.records;
    const updatedRkey = updated.uri.split('/').pop() as string;
    const victimRkey = victim.uri.split('/').pop() as string;
    await write([
      { action: 'update', collection: 'app.bsky.feed.post', rkey: updatedRkey, record: post('edited') },
      { action: 'delete', collection: 'app.bsky.feed.post', rkey: victimRkey },
    ]);
    const fromCar = await verifiedRecords();
    assert.deepEqual(fromCar, indexedRecords());
    assert.equal(fromCar.size, 150);
    assert.equal(fromCar.has(`app.bsky.feed.post/${victimRkey}`), false);
    const edited = store.getRecord(did, 'app.bsky.feed.post', updatedRkey);
    assert.equal((edited?.value as { text: string }).text, 'edited');
    // A version asked for by CID: the current one is served, the replaced one is not.
    assert.equal(store.getRecord(did, 'app.bsky.feed.post', updatedRkey, parseCid(edited!.cid))?.cid, edited!.cid);
    assert.equal(store.getRecord(did, 'app.bsky.feed.post', updatedRkey, parseCid(updated.cid)), undefined);
  });

  it('hands commit listeners ops with prev CIDs, since and prevData', () => {
    const last = events[events.length - 1];
    assert.equal(last.did, did);
    assert.deepEqual(
      last.ops.map((o) => o.action),
      last.ops.map((o) => (o.cid === null ? 'delete' : 'update')),
    );
    for (const op of last.ops) assert.ok(op.prev, 'updates and deletes carry prev');
    assert.ok(last.since);
    assert.ok(last.prevData);
    assert.ok(last.blocks.has(last.commit));
  });

  it('pages listRecords newest first, and oldest first with reverse', () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = store.listRecords(did, 'app.bsky.feed.post', { limit: 40, cursor });
      seen.push(...page.records.map((r) => r.uri));
      cursor = page.cursor;
    } while (cursor);
    assert.equal(seen.length, 149);
    assert.deepEqual(seen, [...seen].sort().reverse());
    const reversed = store
      .listRecords(did, 'app.bsky.feed.post', { limit: 5, reverse: true })
      .records.map((r) => r.uri);
    assert.deepEqual(reversed, [...seen].reverse().slice(0, 5));
  });

  it('rejects a stale swapCommit and a wrong swapRecord without changing anything', async () => {
    const root = store.getRoot(did);
    assert.ok(root);
    const stale = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';
    await assert.rejects(write([{ action: 'create', collection: 'app.bsky.feed.post', record: post('x') }], stale), {
      code: 'InvalidSwap',
    });
    const { records } = store.listRecords(did, 'app.bsky.feed.post', { limit: 1 });
    const rkey = records[0].uri.split('/').pop() as string;
    await assert.rejects(
      write([{ action: 'update', collection: 'app.bsky.feed.post', rkey, record: post('y'), swapRecord: stale }]),
      { code: 'InvalidSwap' },
    );
    assert.deepEqual(store.getRoot(did), root);
  });

  it('proves a record with blocks the reference accepts', async () => {
    const { records } = store.listRecords(did, 'app.bsky.feed.post', { limit: 1 });
    const rkey = records[0].uri.split('/').pop() as string;
    const proof = store.getRecordProof(did, 'app.bsky.feed.post', rkey);
    const { writeCarBytes } = await import('@portage/atproto/car/writer');
    const car = await writeCarBytes([proof.root], proof.blocks);
    const { CID } = await import('multiformats/cid');
    const result = await verifyProofs(
      car,
      [{ collection: 'app.bsky.feed.post', rkey, cid: CID.parse(records[0].cid) as never }],
      did,
      key.did(),
    );
    assert.equal(result.verified.length, 1);
  });

  it('rejects bad writes before touching storage', () => {
    const bad: [string, WriteRequest[]][] = [
      ['invalid record', [{ action: 'create', collection: 'app.bsky.feed.post', record: { text: 1 } }]],
      ['bad rkey', [{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'a/b', record: post('x') }]],
      ['bad collection', [{ action: 'create', collection: 'not an nsid', record: post('x') }]],
      [
        'too large',
        [
          {
            action: 'create',
            collection: 'com.example.big',
            record: { $type: 'com.example.big', s: 'x'.repeat(1_100_000) },
          },
        ],
      ],
      [
        'too many',
        Array.from({ length: 201 }, () => ({
          action: 'create' as const,
          collection: 'com.example.x',
          record: { $type: 'com.example.x' },
        })),
      ],
      ['float', [{ action: 'create', collection: 'com.example.x', record: { $type: 'com.example.x', n: 1.5 } }]],
      ['wrong $type', [{ action: 'create', collection: 'com.example.x', record: { $type: 'com.example.y' } }]],
      [
        'unknown lexicon with validate',
        [{ action: 'create', collection: 'com.example.x', record: { $type: 'com.example.x' }, validate: true }],
      ],
      [
        'profile rkey must be self',
        [
          {
            action: 'create',
            collection: 'app.bsky.actor.profile',
            rkey: 'notself',
            record: { $type: 'app.bsky.actor.profile' },
          },
        ],
      ],
    ];
    for (const [name, writes] of bad) {
      assert.throws(
        () => prepareWrites(writes),
        (e: unknown) => e instanceof WriteRequestError && e.code === 'InvalidRequest',
        name,
      );
    }
  });

  it('makes a blob permanent when a record references it and deletes it with the last reference', async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);
    const blob = await store.uploadBlob(did, single(png), 'application/octet-stream', 1000);
    assert.equal(blob.mimeType, 'image/png');
    assert.equal(store.getBlobInfo(did, blob.cid)?.temporary, true);
    assert.equal(await store.readBlob(did, blob.cid), undefined, 'temporary blobs are not served');
    const ref = { $type: 'blob', ref: { $link: formatCid(blob.cid) }, mimeType: blob.mimeType, size: blob.size };
    const avatar = { $type: 'app.bsky.actor.profile', displayName: 'me', avatar: ref };
    await write([{ action: 'create', collection: 'app.bsky.actor.profile', rkey: 'self', record: avatar }]);
    assert.equal(store.getBlobInfo(did, blob.cid)?.temporary, false);
    const read = await store.readBlob(did, blob.cid);
    assert.ok(read);
    assert.deepEqual(new Uint8Array(await collect(read.stream)), png);
    assert.deepEqual(store.listBlobs(did, { limit: 10 }), [formatCid(blob.cid)]);

    await write([{ action: 'delete', collection: 'app.bsky.actor.profile', rkey: 'self' }]);
    assert.equal(store.getBlobInfo(did, blob.cid), undefined);
    assert.equal(await store.blobstore.hasPermanent(did, blob.cid), false);
  });

  it('refuses a record referencing a blob that was never uploaded', async () => {
    const ref = {
      $type: 'blob',
      ref: { $link: 'bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' },
      mimeType: 'image/png',
      size: 3,
    };
    await assert.rejects(
      write([
        {
          action: 'create',
          collection: 'app.bsky.actor.profile',
          rkey: 'self',
          record: { $type: 'app.bsky.actor.profile', avatar: ref },
        },
      ]),
      { code: 'BlobNotFound' },
    );
  });

  it('stops an upload over the limit while streaming and keeps nothing', async () => {
    async function* big() {
      for (let i = 0; i < 10; i++) yield new Uint8Array(1000);
    }
    await assert.rejects(store.uploadBlob(did, big(), 'image/png', 5000), { code: 'BlobTooLarge' });
    const tmp = join(dir, 'blobs', 'tmp');
    const leftovers = readdirSync(tmp, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    assert.deepEqual(leftovers, []);
  });

  it('exports only the blocks after a rev with since', async () => {
    const root = store.getRoot(did);
    assert.ok(root);
    await write([{ action: 'create', collection: 'app.bsky.feed.post', record: post('later') }]);
    const diff = await collect(store.exportCar(did, root.rev));
    const full = await collect(store.exportCar(did));
    assert.ok(diff.length > 0 && diff.length < full.length / 4);
  });

  it('streams a consistent snapshot while commits land mid-export', async () => {
    const before = await verifiedRecords();
    // The export starts (its snapshot is taken) before the writes; its blocks are read after.
    const stream = store.exportCar(did)[Symbol.asyncIterator]();
    const chunks: Uint8Array[] = [];
    const { records } = store.listRecords(did, 'app.bsky.feed.post', { limit: 50 });
    await write(
      records.map((r) => ({
        action: 'delete' as const,
        collection: 'app.bsky.feed.post',
        rkey: r.uri.split('/').pop() as string,
      })),
    );
    for (let r = await stream.next(); !r.done; r = await stream.next()) chunks.push(r.value);
    const verified = await verifyRepoCar(Buffer.concat(chunks), did, key.did());
    assert.equal(verified.creates.length, before.size, 'the export shows the repository as it was when it started');
  });

  it('coalesces concurrent writers into shared commits; a failing request fails alone', async () => {
    const existing = store.listRecords(did, 'app.bsky.feed.post', { limit: 1 }).records[0];
    assert.ok(existing);
    const existingRkey = existing.uri.split('/').pop() as string;
    const eventsBefore = events.length;
    const ok = Array.from({ length: 20 }, (_, i) =>
      write([{ action: 'create', collection: 'com.example.item', rkey: `concurrent${i}`, record: item(i) }]),
    );
    const clash = write([
      { action: 'create', collection: 'app.bsky.feed.post', rkey: existingRkey, record: post('dup') },
    ]);
    const same = write([{ action: 'create', collection: 'com.example.item', rkey: 'concurrent3', record: item(99) }]);
    const results = await Promise.all(ok);
    await assert.rejects(clash, /already exists/);
    await assert.rejects(same, /already exists/);
    const commits = new Set(results.map((r) => formatCid(r.commit.cid)));
    assert.ok(commits.size < 20, `20 writers shared ${commits.size} commits`);
    assert.equal(events.length - eventsBefore, commits.size, 'one firehose commit per shared commit');
    for (let i = 0; i < 20; i++) {
      assert.equal(results[i]!.results[0]!.uri, `at://${did}/com.example.item/concurrent${i}`);
      assert.equal((store.getRecord(did, 'com.example.item', `concurrent${i}`)?.value as { n: number }).n, i);
    }
    assert.deepEqual(await verifiedRecords(), indexedRecords());
  });
});

describe('bulk writes go straight into the database file', () => {
  const fillRepoBlocks = (db: SqliteDb, count: number) =>
    db.transaction(() => {
      const insert = db.prepare('INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)');
      for (let i = 0; i < count; i++) insert.run(Buffer.from(`bulk-${i}`), 'rev', 4000, Buffer.alloc(4000, 7));
    })();
  const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
  const blockCount = (db: Pick<SqliteDb, 'prepare'>) =>
    (db.prepare('SELECT count(*) AS n FROM repo_block').get() as { n: number }).n;
  /** A store in a temporary folder with one account, and the path of that account's database. */
  const withAccount = async (run: (store: ActorStore, path: string) => Promise<void>) => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-bulk-write-'));
    const store = new ActorStore({ directory: join(dir, 'actors'), blobstore: new DiskBlobStore(join(dir, 'blobs')) });
    try {
      await store.create(did, await generateSigningKey());
      await run(store, join(store.accountDirectory(did), 'store.sqlite'));
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('writes through a rollback journal, not the WAL, and is back in WAL mode afterwards', () =>
    withAccount(async (store, path) => {
      const sizeBefore = statSync(path).size;
      let modeInside: unknown;
      await store.bulkWrite(did, (db) => {
        modeInside = db.pragma('journal_mode', { simple: true });
        fillRepoBlocks(db, 3000);
      });
      assert.equal(modeInside, 'delete');
      const db = store.database(did)!;
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      // The 12 MB are in the database file, and no WAL holds a second copy of them.
      assert.ok(statSync(path).size > sizeBefore + 3000 * 4000, 'the pages are in the database file');
      assert.ok(walBytes(path) < 1_000_000, `the WAL holds ${walBytes(path)} bytes`);
      assert.ok(blockCount(db) > 3000);
      // Ordinary commits go through the WAL again.
      await store.applyWrites(
        did,
        prepareWrites([{ action: 'create', collection: 'com.example.item', rkey: 'after', record: { n: 1 } }]),
      );
      assert.ok(walBytes(path) > 0, 'the next commit is in the WAL');
    }));

  it('runs in WAL mode when another connection has the file open', () =>
    withAccount(async (store, path) => {
      const reader = new Database(path, { readonly: true });
      try {
        blockCount(reader);
        let modeInside: unknown;
        await store.bulkWrite(did, (db) => {
          modeInside = db.pragma('journal_mode', { simple: true });
          fillRepoBlocks(db, 300);
        });
        assert.equal(modeInside, 'wal');
        assert.ok(blockCount(reader) > 300, 'the other connection sees the write');
      } finally {
        reader.close();
      }
    }));

  it('a bulk write that throws rolls back and leaves the database in WAL mode', () =>
    withAccount(async (store) => {
      const db = store.database(did)!;
      const before = blockCount(db);
      await assert.rejects(
        store.bulkWrite(did, (conn) =>
          conn.transaction(() => {
            fillRepoBlocks(conn, 300);
            throw new Error('the import found a missing block');
          })(),
        ),
        /missing block/,
      );
      assert.equal(blockCount(db), before, 'nothing of the failed write is stored');
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    }));
});

describe('actor store with more accounts than open databases', () => {
  it('closes idle databases and reopens them transparently', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-actor-evict-'));
    const store = new ActorStore({
      directory: join(dir, 'actors'),
      blobstore: new DiskBlobStore(join(dir, 'blobs')),
      maxOpenStores: 2,
    });
    try {
      const accounts = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => ({
          did: `did:plc:evict${'a'.repeat(18)}${i}`,
          key: await generateSigningKey(),
        })),
      );
      for (const a of accounts) await store.create(a.did, a.key);
      for (let round = 0; round < 3; round++) {
        for (const a of accounts) {
          await store.applyWrites(
            a.did,
            prepareWrites([{ action: 'create', collection: 'app.bsky.feed.post', record: post(`r${round}`) }]),
          );
        }
      }
      for (const a of accounts) {
        const verified = await verifyRepoCar(await collect(store.exportCar(a.did)), a.did, a.key.did());
        assert.equal(verified.creates.length, 3);
        assert.equal(store.getRootIndexed(a.did)?.rev, store.getRoot(a.did)?.rev);
      }
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('group commits within the firehose limits', () => {
  it('splits concurrent requests so no #commit exceeds 200 ops or 2,000,000 bytes of blocks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-actor-limits-'));
    const store = new ActorStore({ directory: join(dir, 'actors'), blobstore: new DiskBlobStore(join(dir, 'blobs')) });
    // The firehose's own event builder, which refuses an over-limit commit (and so the write).
    const sizes: { ops: number; carBytes: number }[] = [];
    store.onCommit((e) => {
      commitEventBody({ ...e, blocks: e.blocks.entries() }, new Date().toISOString());
      sizes.push({ ops: e.ops.length, carBytes: encodeEventCar(e.commit, e.blocks.entries()).length });
    });
    try {
      const key = await generateSigningKey();
      await store.create(did, key);
      const big = (n: number, size: number) => ({ $type: 'com.example.big', n, data: 'x'.repeat(size) });
      // Each request is well within the limits on its own; together they are not.
      const large = Array.from({ length: 4 }, (_, i) =>
        store.applyWrites(
          did,
          prepareWrites([
            { action: 'create', collection: 'com.example.big', rkey: `big${i}`, record: big(i, 700_000) },
          ]),
        ),
      );
      const many = Array.from({ length: 3 }, (_, i) =>
        store.applyWrites(
          did,
          prepareWrites(
            Array.from({ length: 80 }, (_, j) => ({
              action: 'create' as const,
              collection: 'com.example.item',
              rkey: `many${i}-${j}`,
              record: item(j),
            })),
          ),
        ),
      );
      const results = await Promise.all([...large, ...many]);
      assert.equal(results.length, 7);
      // A single request as large as the limits allow still commits, alone.
      const pair = await store.applyWrites(
        did,
        prepareWrites(
          [0, 1].map((i) => ({
            action: 'create' as const,
            collection: 'com.example.big',
            rkey: `pair${i}`,
            record: big(i, 950_000),
          })),
        ),
      );
      assert.equal(pair.results.length, 2);
      assert.ok(sizes.length >= 5, `${sizes.length} commits`);
      for (const size of sizes) {
        assert.ok(size.ops <= 200, `a commit of ${size.ops} ops`);
        assert.ok(size.carBytes <= 2_000_000, `a commit of ${size.carBytes} bytes of blocks`);
      }
      const verified = await verifyRepoCar(await collect(store.exportCar(did)), did, key.did());
      assert.equal(verified.creates.length, 4 + 240 + 2);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
