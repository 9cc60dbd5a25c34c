// The sequencer under SIGKILL: a child process commits records to an actor-style database with
// their #commit events through the outbox, and is killed mid-stream, three times. Afterwards
// every committed record has exactly one event, seqs are contiguous, and a seq announced before
// a kill still names the same event (never reused).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encode } from '@atcute/cbor';
import { cidForCbor } from '@portage/atproto/cid';
import Database from 'better-sqlite3';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { Sequencer } from '../src/sequencer/sequencer.ts';
import { runChildAndKill } from './crash-child.ts';

const DID = 'did:plc:crashcrashcrashcrashcras';

function openHost(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS record (n INTEGER PRIMARY KEY)');
  return db;
}

/** Commits records 0, 1, 2... each with its #commit, printing `SEQ <seq> <path>` as events are announced. */
async function child(seqPath: string, hostPath: string): Promise<void> {
  const host = openHost(hostPath);
  const sequencer = new Sequencer({ dbPath: seqPath, openOutboxHost: (key) => (key === DID ? host : undefined) });
  sequencer.recover();
  sequencer.onEvent((event) => {
    const ops = decodeFrame(event.frame).body.ops as Array<{ path: string }>;
    process.stdout.write(`SEQ ${event.seq} ${ops[0]!.path}\n`);
  });
  const insert = host.prepare('INSERT INTO record (n) VALUES (?)');
  let n = ((host.prepare('SELECT max(n) AS n FROM record').get() as { n: number | null }).n ?? -1) + 1;
  for (;;) {
    const record = encode({ $type: 'app.bsky.feed.post', text: `record ${n}` });
    const commit = encode({ did: DID, version: 3, n });
    host.transaction(() => {
      insert.run(n);
      sequencer.sequenceCommit(
        { key: DID, db: host },
        {
          did: DID,
          commit: cidForCbor(commit),
          rev: '3l4zzzzzzzz22',
          since: null,
          prevData: null,
          ops: [{ action: 'create', path: `app.bsky.feed.post/${n}`, cid: cidForCbor(record) }],
          blocks: [
            { cid: cidForCbor(commit), bytes: commit },
            { cid: cidForCbor(record), bytes: record },
          ],
        },
      );
    })();
    n++;
    // Every few records let the scheduled flush run; otherwise several commits share one flush.
    if (n % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

if (process.argv[2] === '--crash-child') {
  await child(process.argv[3]!, process.argv[4]!);
} else {
  test('SIGKILL mid-stream: no event lost or duplicated, seqs contiguous and never reused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-firehose-crash-'));
    try {
      const seqPath = join(dir, 'sequencer.sqlite');
      const hostPath = join(dir, 'actor.sqlite');
      const announced = new Map<number, string>();
      let previousMax = 0;
      for (let run = 0; run < 3; run++) {
        const seen = await runChildAndKill(import.meta.filename, [seqPath, hostPath], 300);
        const seqs = [...seen.keys()];
        assert.ok(Math.min(...seqs) > previousMax, `run ${run}: new seqs start after every seq announced before`);
        previousMax = Math.max(...seqs);
        for (const [seq, path] of seen) announced.set(seq, path);
      }

      // Start-up after the last kill: recovery, then the log must match the committed records.
      const host = openHost(hostPath);
      const sequencer = new Sequencer({ dbPath: seqPath, openOutboxHost: () => host });
      sequencer.recover();
      const log = sequencer.readAfter(0, 1_000_000);
      assert.deepEqual(
        log.map((e) => e.seq),
        Array.from({ length: log.length }, (_, i) => i + 1),
        'seqs are contiguous from 1',
      );
      const pathBySeq = new Map(
        log.map((e) => [e.seq, (decodeFrame(e.frame).body.ops as Array<{ path: string }>)[0]!.path]),
      );
      for (const [seq, path] of announced) assert.equal(pathBySeq.get(seq), path, `seq ${seq} still names ${path}`);
      const records = (host.prepare('SELECT n FROM record ORDER BY n').all() as Array<{ n: number }>).map(
        (r) => `app.bsky.feed.post/${r.n}`,
      );
      assert.deepEqual([...pathBySeq.values()].sort(), [...records].sort(), 'exactly one event per committed record');
      assert.equal((host.prepare('SELECT count(*) AS n FROM seq_outbox').get() as { n: number }).n, 0);
      sequencer.close();
      host.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
