/**
 * A data directory written by an older Portage (test/fixtures/data-dir-v1: actor stores without
 * a schema version) is served by this one: each store is upgraded when it is opened, and every
 * account, record, blob, preference, app password and firehose event is still there, with new
 * writes continuing the same repositories. The fixture is copied first: it is never changed.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CidLink, fromCidLink } from '@atcute/cbor';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';
import { formatCid } from '@portage/atproto/cid';
import { ACTOR_DB_VERSION, openActorDb } from '../src/actor-store/db.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { startTestPds, type TestPds } from './harness.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'data-dir-v1');
// The bytes of the fixture's one blob (alice's avatar).
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

function storeFiles(dataDir: string): string[] {
  const actors = join(dataDir, 'actors');
  return readdirSync(actors, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('store.sqlite'))
    .map((f) => join(actors, f));
}

function userVersion(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

describe('a data directory written by an older Portage', () => {
  let dir: string;
  let pds: TestPds;
  let alice: AtpAgent;
  let aliceDid: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-upgrade-'));
    cpSync(FIXTURE, dir, { recursive: true });
    assert.deepEqual(storeFiles(dir).map(userVersion), [0, 0], 'the fixture holds two unversioned account stores');
    // The fixture's events are older than the default one-day backfill window.
    pds = await startTestPds({ dataDir: dir, env: { PDS_REPO_BACKFILL_LIMIT_MS: String(100 * 365 * 86_400_000) } });
    alice = new AtpAgent({ service: pds.url });
    await alice.login({ identifier: 'alice.test', password: 'alice-password' });
    aliceDid = alice.session!.did;
  });
  after(async () => {
    await pds?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs both accounts in, with their app password and preferences', async () => {
    const bob = new AtpAgent({ service: pds.url });
    await bob.login({ identifier: 'bob.test', password: 'bob-password' });
    assert.equal(bob.session!.handle, 'bob.test');
    const appPasswords = await alice.com.atproto.server.listAppPasswords();
    assert.deepEqual(
      appPasswords.data.passwords.map((p) => p.name),
      ['fixture-app'],
    );
    const prefs = await alice.app.bsky.actor.getPreferences();
    assert.deepEqual(prefs.data.preferences, [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: false }]);
  });

  it('upgrades each store when it opens it, and serves its records and blob', async () => {
    const profile = await alice.com.atproto.repo.getRecord({
      repo: aliceDid,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
    });
    const value = profile.data.value as { displayName: string; avatar: { ref: { toString(): string } } };
    assert.equal(value.displayName, 'Alice');
    const posts = await alice.com.atproto.repo.listRecords({ repo: aliceDid, collection: 'app.bsky.feed.post' });
    assert.deepEqual(
      posts.data.records.map((r) => (r.value as { text: string }).text),
      ['post 3', 'post 2', 'post 1', 'post 0'],
    );
    const blob = await alice.com.atproto.sync.getBlob({ did: aliceDid, cid: value.avatar.ref.toString() });
    assert.deepEqual(Buffer.from(blob.data), PNG);
    assert.equal(blob.headers['content-type'], 'image/png');
    // Alice's store was opened by these reads; both are upgraded once opened.
    await alice.com.atproto.repo.describeRepo({ repo: 'bob.test' });
    assert.deepEqual(storeFiles(dir).map(userVersion), [ACTOR_DB_VERSION, ACTOR_DB_VERSION]);
  });

  it('exports a repository @atproto/repo verifies, and takes new writes on top of it', async () => {
    const doc = (await (await fetch(`${pds.plcUrl}/${aliceDid}`)).json()) as {
      verificationMethod: { id: string; publicKeyMultibase: string }[];
    };
    const method = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'));
    assert.ok(method);
    const signingKey = `did:key:${method.publicKeyMultibase}`;
    const before = await verifyRepoCar(
      (await alice.com.atproto.sync.getRepo({ did: aliceDid })).data,
      aliceDid,
      signingKey,
    );
    assert.equal(before.creates.length, 5, 'a profile and four posts');
    const head = await alice.com.atproto.sync.getLatestCommit({ did: aliceDid });

    const frames: { t: string; body: Record<string, unknown> }[] = [];
    const socket = new WebSocket(`${pds.url.replace('http', 'ws')}/xrpc/com.atproto.sync.subscribeRepos?cursor=0`);
    try {
      socket.on('message', (data: Buffer) => {
        const frame = decodeFrame(new Uint8Array(data));
        frames.push({ t: String(frame.t), body: frame.body as Record<string, unknown> });
      });
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const created = await alice.com.atproto.repo.createRecord({
        repo: aliceDid,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'after the upgrade', createdAt: new Date().toISOString() },
      });
      const newCommit = created.data.commit!.cid;
      const isNew = (f: (typeof frames)[number]) =>
        f.t === '#commit' && formatCid(fromCidLink(f.body.commit as CidLink)) === newCommit;
      for (let i = 0; i < 500 && !frames.some(isNew); i++) await new Promise((r) => setTimeout(r, 10));
      const mine = frames.filter((f) => f.body.repo === aliceDid || f.body.did === aliceDid);
      // The older Portage's events are served from the log, then the new commit follows them.
      assert.ok(mine.filter((f) => f.t === '#commit').length >= 8, frames.map((f) => f.t).join(', '));
      const last = mine.at(-1)!;
      assert.ok(isNew(last), 'the new commit is the last event');
      assert.equal(last.body.since, head.data.rev, 'it follows the old head');
      const seqs = frames.map((f) => f.body.seq as number);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        'in sequence order',
      );
    } finally {
      socket.terminate();
    }

    const afterWrite = await verifyRepoCar(
      (await alice.com.atproto.sync.getRepo({ did: aliceDid })).data,
      aliceDid,
      signingKey,
    );
    assert.equal(afterWrite.creates.length, 6);
  });
});

describe('an actor store written by a newer Portage', () => {
  it('is refused rather than written with an older schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-newer-'));
    try {
      const path = join(dir, 'store.sqlite');
      const db = new Database(path);
      db.pragma(`user_version = ${ACTOR_DB_VERSION + 1}`);
      db.close();
      assert.throws(() => openActorDb(path), /newer than this Portage/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
