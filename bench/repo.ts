// `npm run bench -- repo [records]`: the repository engine against @atproto/repo, side by side.
// Main process, on a realistic repository (default 100,000 records; likes, posts, follows,
// reposts, a profile): build by batches of 200 signed commits, export to CAR, import + verify,
// then single-record commits on the full tree. Then peak RSS of export and of import+verify at
// 100k and 500k records, each side in its own child process reading/writing SQLite and files the
// way a PDS does (ours stages the import in SQLite; the reference holds the CAR in memory, which
// is what its verifyRepoCar takes).
import { spawnSync } from 'node:child_process';
import {
  createReadStream,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Cid, formatCid, parseCid } from '../packages/atproto/src/cid.ts';
import { collectBytes } from '../packages/atproto/src/car/writer.ts';
import { generateSigningKey, importSigningKey } from '../packages/atproto/src/crypto.ts';
import { type BlockMap, type BlockStore, MemoryBlockStore } from '../packages/atproto/src/repo/block-store.ts';
import { exportRepo } from '../packages/atproto/src/repo/export.ts';
import { importRepo } from '../packages/atproto/src/repo/import.ts';
import { type RecordWrite, Repo } from '../packages/atproto/src/repo/repo.ts';
import { formatTid } from '../packages/atproto/src/tid.ts';
import { peakRssMb, report, timeIt, writeResults } from './lib/report.ts';
import { seededRandom } from '../test/support/seeded-random.ts';

const DID = 'did:plc:benchbenchbenchbenchbenc';

const WORDS =
  'the a of to and in is it you that he was for on are with as I his they be at one have this from or had by'.split(
    ' ',
  );

/** Realistic writes: TID keys in time order, Bluesky-shaped records (no CID links: strongRef cids are strings). */
function* realisticWrites(count: number, seed = 42): Generator<RecordWrite> {
  const random = seededRandom(seed);
  let micros = 1_690_000_000_000_000;
  yield {
    action: 'create',
    collection: 'app.bsky.actor.profile',
    rkey: 'self',
    record: { $type: 'app.bsky.actor.profile', displayName: 'Bench', description: 'A benchmark account' },
  };
  for (let i = 1; i < count; i++) {
    micros += 1 + Math.floor(random() * 60_000_000);
    const rkey = formatTid(micros, 17);
    const createdAt = new Date(micros / 1000).toISOString();
    const r = random();
    const subject = `at://did:plc:${(i * 7919).toString(36).padStart(24, 'x')}/app.bsky.feed.post/${formatTid(micros - 1000, 3)}`;
    const cid = 'bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454';
    if (r < 0.5) {
      yield {
        action: 'create',
        collection: 'app.bsky.feed.like',
        rkey,
        record: { $type: 'app.bsky.feed.like', subject: { uri: subject, cid }, createdAt },
      };
    } else if (r < 0.8) {
      const n = 5 + Math.floor(random() * 40);
      const text = Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
      yield {
        action: 'create',
        collection: 'app.bsky.feed.post',
        rkey,
        record: { $type: 'app.bsky.feed.post', text, langs: ['en'], createdAt },
      };
    } else if (r < 0.95) {
      yield {
        action: 'create',
        collection: 'app.bsky.graph.follow',
        rkey,
        record: {
          $type: 'app.bsky.graph.follow',
          subject: `did:plc:${(i * 104729).toString(36).padStart(24, 'y')}`,
          createdAt,
        },
      };
    } else {
      yield {
        action: 'create',
        collection: 'app.bsky.feed.repost',
        rkey,
        record: { $type: 'app.bsky.feed.repost', subject: { uri: subject, cid }, createdAt },
      };
    }
  }
}

function batches(count: number, size = 200): RecordWrite[][] {
  const out: RecordWrite[][] = [];
  let current: RecordWrite[] = [];
  for (const w of realisticWrites(count)) {
    current.push(w);
    if (current.length === size) {
      out.push(current);
      current = [];
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** A PDS-style block table in SQLite: synchronous reads, a rev per block. */
class SqliteBlockStore implements BlockStore {
  readonly db: Database.Database;
  readonly #get: Database.Statement;
  readonly #put: Database.Statement;
  readonly #del: Database.Statement;
  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = OFF');
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS blocks (cid TEXT PRIMARY KEY, bytes BLOB NOT NULL, rev TEXT) WITHOUT ROWID',
    );
    this.#get = this.db.prepare('SELECT bytes FROM blocks WHERE cid = ?').pluck();
    this.#put = this.db.prepare('INSERT OR IGNORE INTO blocks (cid, bytes, rev) VALUES (?, ?, ?)');
    this.#del = this.db.prepare('DELETE FROM blocks WHERE cid = ?');
  }
  getBlock(cid: Cid): Uint8Array | undefined {
    return this.#get.get(formatCid(cid)) as Uint8Array | undefined;
  }
  hasBlock(cid: Cid): boolean {
    return this.getBlock(cid) !== undefined;
  }
  putBlock(cid: Cid, bytes: Uint8Array, rev?: string): void {
    this.#put.run(formatCid(cid), bytes, rev ?? null);
  }
  deleteBlock(cid: Cid): void {
    this.#del.run(formatCid(cid));
  }
  applyCommit(commit: { rev: string; newBlocks: BlockMap; removedCids: readonly Cid[] }): void {
    this.db.transaction(() => {
      for (const cid of commit.removedCids) this.deleteBlock(cid);
      for (const b of commit.newBlocks.entries()) this.putBlock(b.cid, b.bytes, commit.rev);
    })();
  }
}

// ------------------------------------------------------------------------------------------------
// Child processes for the RSS figures. argv: --child <what> <side> <dir>

async function child(what: string, side: string, dir: string): Promise<void> {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { commit: string; didKey: string };
  if (what === 'export' && side === 'portage') {
    const store = new SqliteBlockStore(join(dir, 'repo.sqlite'));
    const out = createWriteStream('/dev/null');
    for await (const chunk of exportRepo(store, parseCid(meta.commit)))
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  } else if (what === 'export' && side === 'reference') {
    const oracle = await import('@atproto/repo');
    const { CID } = await import('multiformats/cid');
    const db = new Database(join(dir, 'repo.sqlite'), { readonly: true });
    const get = db.prepare('SELECT bytes FROM blocks WHERE cid = ?').pluck();
    class SqliteReadable extends oracle.ReadableBlockstore {
      async getBytes(cid: InstanceType<typeof CID>) {
        return (get.get(cid.toString()) as Uint8Array | undefined) ?? null;
      }
      async has(cid: InstanceType<typeof CID>) {
        return get.get(cid.toString()) !== undefined;
      }
      async getBlocks(cids: InstanceType<typeof CID>[]) {
        const blocks = new oracle.BlockMap();
        const missing: InstanceType<typeof CID>[] = [];
        for (const cid of cids) {
          const bytes = get.get(cid.toString()) as Uint8Array | undefined;
          if (bytes) blocks.set(cid as never, bytes);
          else missing.push(cid);
        }
        return { blocks, missing };
      }
    }
    const out = createWriteStream('/dev/null');
    for await (const chunk of oracle.getFullRepo(new SqliteReadable() as never, CID.parse(meta.commit) as never)) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  } else if (what === 'import' && side === 'portage') {
    const stagingPath = join(dir, `staging-${process.pid}.sqlite`);
    const staging = new SqliteBlockStore(stagingPath);
    staging.db.exec('BEGIN');
    const verified = await importRepo(createReadStream(join(dir, 'repo.car'), { highWaterMark: 256 * 1024 }), {
      did: DID,
      signingKeys: meta.didKey,
      staging,
    });
    let n = 0;
    for (const _ of verified.records()) n++;
    staging.db.exec('COMMIT');
    staging.db.close();
    rmSync(stagingPath, { force: true });
    if (n !== verified.recordCount) throw new Error('record count mismatch');
  } else if (what === 'import' && side === 'reference') {
    const oracle = await import('@atproto/repo');
    const bytes = readFileSync(join(dir, 'repo.car'));
    await oracle.verifyRepoCar(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), DID, meta.didKey);
  }
  process.stdout.write(JSON.stringify({ rss: ownPeakRssMb() }));
}

// getrusage's maxrss survives exec on Linux, so a child spawned by a large parent would report
// the parent's peak; VmHWM belongs to this process image alone.
function ownPeakRssMb(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) / 1024;
  } catch {
    // not Linux: fall back to getrusage
  }
  return peakRssMb();
}

function runChild(what: string, side: string, dir: string): number {
  const result = spawnSync(process.execPath, [import.meta.filename, '--child', what, side, dir], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (result.status !== 0) throw new Error(`child ${what} ${side} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { rss: number }).rss;
}

/** Builds an N-record repository with our writer straight into SQLite, and its CAR file. */
async function prepareDataset(count: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `portage-bench-repo-${count}-`));
  const key = await generateSigningKey();
  const store = new SqliteBlockStore(join(dir, 'repo.sqlite'));
  let result = await Repo.create(store, DID, key);
  store.applyCommit(result);
  for (const batch of batches(count)) {
    result = await result.repo.applyWrites(batch, key);
    store.applyCommit(result);
  }
  const out = createWriteStream(join(dir, 'repo.car'));
  for await (const chunk of exportRepo(store, result.cid))
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(() => r()));
  store.db.close();
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ commit: formatCid(result.cid), didKey: key.did() }));
  return dir;
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 100_000);
  const oracle = await import('@atproto/repo');
  const { Secp256k1Keypair } = await import('@atproto/crypto');
  const keypair = await Secp256k1Keypair.create({ exportable: true });
  const key = await importSigningKey(await keypair.export(), 'secp256k1');
  const work = batches(count);

  // Build by batches of 200.
  const store = new MemoryBlockStore();
  const ours = await timeIt(async () => {
    let result = await Repo.create(store, DID, key);
    store.applyCommit(result);
    for (const batch of work) {
      result = await result.repo.applyWrites(batch, key);
      store.applyCommit(result);
    }
    return result.repo;
  });
  const storage = new oracle.MemoryBlockstore();
  const theirs = await timeIt(async () => {
    let repo = await oracle.Repo.create(storage, DID, keypair);
    for (const batch of work) {
      // WriteOpAction's values are the same strings ('create', ...), so our writes fit as they are.
      repo = await repo.applyWrites(batch as never, keypair);
    }
    return repo;
  });
  if (formatCid(ours.value.data.rootCid()) !== theirs.value.data.pointer.toString())
    throw new Error('MST roots differ');
  report({
    bench: 'repo',
    metric: `build ${count} records by batches of 200`,
    unit: 'records/s',
    better: 'higher',
    portage: count / ours.seconds,
    reference: count / theirs.seconds,
  });

  // Export.
  const ourCar = await timeIt(() => collectBytes(exportRepo(store, ours.value.cid)));
  const theirCar = await timeIt(() => collectBytes(oracle.getFullRepo(storage, theirs.value.cid)));
  report({
    bench: 'repo',
    metric: `export ${count}-record repo to CAR`,
    unit: 's',
    better: 'lower',
    portage: ourCar.seconds,
    reference: theirCar.seconds,
  });

  // Import and verify (same CAR content shape; each side verifies its own repo's CAR, same records).
  const ourImport = await timeIt(() => importRepo([ourCar.value], { did: DID, signingKeys: key.did() }));
  const theirImport = await timeIt(() => oracle.verifyRepoCar(theirCar.value, DID, keypair.did()));
  if (ourImport.value.recordCount !== theirImport.value.creates.length) throw new Error('record counts differ');
  report({
    bench: 'repo',
    metric: `import + verify ${count}-record CAR`,
    unit: 's',
    better: 'lower',
    portage: ourImport.seconds,
    reference: theirImport.seconds,
  });

  // One-record commits on the full tree.
  const singles = 300;
  let micros = 1_800_000_000_000_000;
  const single = (): RecordWrite => {
    micros += 1000;
    return {
      action: 'create',
      collection: 'app.bsky.feed.post',
      rkey: formatTid(micros, 5),
      record: { $type: 'app.bsky.feed.post', text: 'single write', createdAt: new Date().toISOString() },
    };
  };
  const ourSingles = await timeIt(async () => {
    let repo = ours.value;
    for (let i = 0; i < singles; i++) {
      const r = await repo.applyWrites([single()], key);
      store.applyCommit(r);
      repo = r.repo;
    }
  });
  micros = 1_800_000_000_000_000;
  const theirSingles = await timeIt(async () => {
    let repo = theirs.value;
    for (let i = 0; i < singles; i++)
      repo = await repo.applyWrites({ ...single(), action: oracle.WriteOpAction.Create } as never, keypair);
  });
  report({
    bench: 'repo',
    metric: `single-record commits on a ${count}-record tree`,
    unit: 'commits/s',
    better: 'higher',
    portage: singles / ourSingles.seconds,
    reference: singles / theirSingles.seconds,
  });

  // Peak RSS in child processes.
  for (const n of [100_000, 500_000]) {
    const dir = await prepareDataset(n);
    try {
      const mb = (statSync(join(dir, 'repo.car')).size / 1e6).toFixed(0);
      report({
        bench: 'repo',
        metric: `peak RSS, export ${n} records (${mb} MB CAR) from SQLite`,
        unit: 'MB',
        better: 'lower',
        portage: runChild('export', 'portage', dir),
        reference: runChild('export', 'reference', dir),
      });
      report({
        bench: 'repo',
        metric: `peak RSS, import + verify ${n} records from a CAR file`,
        unit: 'MB',
        better: 'lower',
        portage: runChild('import', 'portage', dir),
        reference: runChild('import', 'reference', dir),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  writeResults('repo');
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, process.argv[5]!);
else await main();
