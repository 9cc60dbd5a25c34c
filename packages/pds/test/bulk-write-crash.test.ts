/**
 * A bulk write (an import) switches the account's database to a rollback journal and back. The
 * process is killed with SIGKILL inside that window, at the two moments that matter: in the middle
 * of the transaction (a hot journal is left, holding the pages the write changed) and after its
 * commit but before the switch back to WAL. Reopened, the store must show the state before the
 * write or after it, nothing in between, in WAL mode, with an intact file.
 *
 * This file is also the child: with PORTAGE_BULK_CRASH set it makes an account, starts a bulk
 * write, says "ready" at the chosen moment and waits there to be killed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateSigningKey } from '@portage/atproto/crypto';
import { ActorStore } from '../src/actor-store/actor-store.ts';
import type { SqliteDb } from '../src/actor-store/db.ts';
import { DiskBlobStore } from '../src/blobstore/disk.ts';

const DID = 'did:plc:bulkcrashbulkcrashbulkcr';
const ROWS = 2000;

type Moment = 'inside-transaction' | 'after-commit';

const openStore = (dir: string) =>
  new ActorStore({ directory: join(dir, 'actors'), blobstore: new DiskBlobStore(join(dir, 'blobs')) });

const blockCount = (db: SqliteDb) => (db.prepare('SELECT count(*) AS n FROM repo_block').get() as { n: number }).n;

/** Stops this process's event loop for good: the parent kills it here. */
function waitToBeKilled(): never {
  // stdout to a pipe is written synchronously, so the parent has the line before this spins.
  process.stdout.write('ready\n');
  for (;;) {
    // Spin: nothing after this point may run.
  }
}

async function runChild(dir: string, moment: Moment): Promise<void> {
  const store = openStore(dir);
  await store.create(DID, await generateSigningKey());
  process.stdout.write(`before ${blockCount(store.database(DID)!)}\n`);
  await store.bulkWrite(DID, (db) => {
    const insert = db.prepare('INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      // Enough pages that the cache spills some into the database file before the commit.
      for (let i = 0; i < ROWS; i++) insert.run(Buffer.from(`bulk-${i}`), 'rev', 4000, Buffer.alloc(4000, i % 251));
      if (moment === 'inside-transaction') waitToBeKilled();
    })();
    if (moment === 'after-commit') waitToBeKilled();
  });
}

/** Runs the child until it is ready at `moment`, kills it, and gives the block count it had before. */
function crashAt(dir: string, moment: Moment): Promise<number> {
  const child = spawn(process.execPath, [import.meta.filename], {
    env: { ...process.env, PORTAGE_BULK_CRASH: JSON.stringify({ dir, moment }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('ready\n')) child.kill('SIGKILL');
    });
    child.on('exit', (_code, signal) => {
      const before = /before (\d+)/.exec(out);
      if (signal === 'SIGKILL' && before) resolve(Number(before[1]));
      else reject(new Error(`the child ended without being killed at ${moment}: ${out}`));
    });
  });
}

if (process.env.PORTAGE_BULK_CRASH) {
  const { dir, moment } = JSON.parse(process.env.PORTAGE_BULK_CRASH) as { dir: string; moment: Moment };
  await runChild(dir, moment);
} else {
  describe('kill -9 during a bulk write', () => {
    for (const [moment, expected] of [
      ['inside-transaction', 'the state before the write'],
      ['after-commit', 'the whole write'],
    ] as const) {
      it(`killed ${moment.replace('-', ' ')}, the store reopens with ${expected}, in WAL mode`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'portage-bulk-crash-'));
        try {
          const before = await crashAt(dir, moment);
          const store = openStore(dir);
          try {
            // What the kill left, before anything opens the file: the write was journaled, not in a WAL.
            const file = join(store.accountDirectory(DID), 'store.sqlite');
            const header = readFileSync(file).subarray(18, 20);
            if (moment === 'inside-transaction') assert.ok(existsSync(`${file}-journal`), 'a hot journal is left');
            else assert.deepEqual([...header], [1, 1], 'the file was left in rollback-journal mode');
            const db = store.database(DID)!;
            assert.equal(blockCount(db), moment === 'inside-transaction' ? before : before + ROWS);
            assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
            assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
            assert.ok(store.getRoot(DID), 'the repository root is still there');
          } finally {
            store.close();
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });
}
