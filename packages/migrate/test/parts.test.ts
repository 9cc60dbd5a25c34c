/** The engine's building blocks on their own: retry policy, adaptive pool, storage, progress, rendering. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { DirectoryBackup } from '../src/backup.node.ts';
import { backupAccount } from '../src/backup-run.ts';
import { type MigrationCredentials, migrate } from '../src/engine.ts';
import { AdaptivePool, ByteBudget } from '../src/blobs.ts';
import type { MigrationEvent } from '../src/events.ts';
import { memoryGuardCheck } from '../src/memory.node.ts';
import { ProgressTracker } from '../src/progress.ts';
import { isRetryable, RateGate, withRetry } from '../src/retry.ts';
import { DirectoryStorage } from '../src/storage.node.ts';
import { createRenderer } from '../src/terminal.node.ts';

/** Credentials for runs that stop before any server would check them. */
const anyCredentials: MigrationCredentials = {
  oldPassword: async () => 'x',
  newPassword: async () => 'x',
  authFactorToken: async () => undefined,
  plcToken: async () => undefined,
};

describe('withRetry', () => {
  it('retries network errors and 5xx, then succeeds', async () => {
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw new XrpcClientError('com.example.x', 0, 'NetworkError', 'reset');
        if (calls === 2) throw new XrpcClientError('com.example.x', 503, 'InternalServerError', 'busy');
        return 'ok';
      },
      { baseDelayMs: 1 },
    );
    assert.equal(value, 'ok');
    assert.equal(calls, 3);
  });

  it('never retries a 4xx other than 408/429', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw new XrpcClientError('com.example.x', 400, 'InvalidRequest', 'bad');
      }),
      /bad/,
    );
    assert.equal(calls, 1);
    assert.equal(isRetryable(new XrpcClientError('x.y.z', 401, 'AuthenticationRequired', '')), false);
  });

  it('waits as long as RateLimit-Reset says on a 429, and pauses the shared gate', async () => {
    const delays: number[] = [];
    const gate = new RateGate();
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ === 0) {
          throw new XrpcClientError(
            'x.y.z',
            429,
            'RateLimitExceeded',
            'slow down',
            new Headers({ 'ratelimit-reset': '0.2' }),
          );
        }
      },
      { gate, onRetry: (_e, _a, ms) => delays.push(ms) },
    );
    assert.deepEqual(delays, [300]); // the server's 200 ms plus a 100 ms margin, no random backoff
  });

  it('gives up after the given attempts', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw new XrpcClientError('x.y.z', 502, 'InternalServerError', 'down');
        },
        { attempts: 3, baseDelayMs: 1 },
      ),
    );
    assert.equal(calls, 3);
  });
});

describe('AdaptivePool', () => {
  it('never runs more tasks than its limit, halves on pressure and grows back on success', async () => {
    const pool = new AdaptivePool(4);
    let active = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    for (let i = 0; i < 6; i++) {
      const adding = pool.add(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise<void>((r) => release.push(r));
        active--;
      });
      if (i < 4) await adding;
      else {
        void adding;
      }
    }
    assert.equal(pool.active, 4);
    pool.shrink();
    assert.equal(pool.limit, 2);
    while (release.length) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await pool.drain();
    assert.equal(peak, 4);
    for (let i = 0; i < 2; i++) pool.succeeded();
    assert.equal(pool.limit, 3);
    pool.shrink();
    pool.shrink();
    pool.shrink();
    assert.equal(pool.limit, 1);
  });
});

describe('ByteBudget', () => {
  it('holds a transfer back until enough bytes are free, and lets an oversized one go alone', async () => {
    const budget = new ByteBudget(16);
    const a = await budget.acquire(10);
    let second = false;
    const waiting = budget.acquire(10).then((g) => {
      second = true;
      return g;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(second, false, 'waits while 10 of 16 bytes are taken');
    budget.release(a);
    const b = await waiting;
    assert.equal(second, true);
    budget.release(b);
    const huge = await budget.acquire(1000);
    assert.equal(huge, 16, 'an oversized transfer takes the whole budget');
    budget.release(huge);
  });
});

describe('memory guard', () => {
  it('collects on growth over the budget, measured from the lowest point since the last collection', () => {
    const MB = 1024 * 1024;
    let bytes = 0;
    let collections = 0;
    const tick = memoryGuardCheck({
      budgetBytes: 8 * MB,
      arrayBufferBytes: () => bytes,
      collect: () => {
        collections++;
        bytes = Math.floor(bytes / 2); // what a collection leaves live
      },
    });
    bytes = 6 * MB;
    tick();
    assert.equal(collections, 0, 'within the budget');
    bytes = 60 * MB; // a busy moment
    tick();
    assert.equal(collections, 1);
    assert.equal(bytes, 30 * MB);
    bytes = 4 * MB; // freed by V8's own collections meanwhile
    tick();
    bytes = 20 * MB; // 16 MB of growth: over the budget, though below the busy moment's baseline
    tick();
    assert.equal(collections, 2, 'growth is measured from 4 MB, not from the 30 MB of the busy moment');
  });
});

describe('DirectoryStorage', () => {
  it('round-trips values, with owner-only files and no temporary leftovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-storage-'));
    try {
      const storage = new DirectoryStorage(join(dir, 'state'));
      assert.equal(await storage.get('migration-did:plc:abc'), undefined);
      await storage.set('migration-did:plc:abc', '{"a":1}');
      await storage.set('migration-did:plc:abc', '{"a":2}');
      assert.equal(await storage.get('migration-did:plc:abc'), '{"a":2}');
      const files = readdirSync(join(dir, 'state'));
      assert.deepEqual(files, ['migration-did_plc_abc.json']);
      assert.equal(statSync(join(dir, 'state', files[0]!)).mode & 0o777, 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('one run per account', () => {
  it('DirectoryStorage: an O_EXCL lock file with the pid, refused while held, taken over when its process is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-lock-'));
    try {
      const storage = new DirectoryStorage(dir);
      const first = await storage.lock('migration-did:plc:abc');
      assert.ok(first.acquired);
      const second = await storage.lock('migration-did:plc:abc');
      assert.ok(!second.acquired);
      assert.equal(second.holder, `pid ${process.pid}`);
      assert.equal(second.location, join(dir, 'migration-did_plc_abc.lock'));
      assert.ok((await storage.lock('migration-did:plc:other')).acquired, 'other accounts are not blocked');
      await first.release();
      assert.ok(!existsSync(second.location), 'release removes the file');
      const third = await storage.lock('migration-did:plc:abc');
      assert.ok(third.acquired);
      await third.release();

      // A lock left by a process that died (SIGKILL leaves it behind) does not block.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      const host = hostname();
      writeFileSync(second.location, JSON.stringify({ pid: Number(dead), host, startedAt: '2020-01-01T00:00:00Z' }));
      const afterCrash = await storage.lock('migration-did:plc:abc');
      assert.ok(afterCrash.acquired, 'a stale lock is taken over');
      await afterCrash.release();

      // Runs started together after a crash: each finds the same stale lock, and exactly one
      // takes it (breaking the stale file must never remove a lock another run has just taken).
      for (let round = 0; round < 20; round++) {
        writeFileSync(second.location, JSON.stringify({ pid: Number(dead), host, startedAt: '2020-01-01T00:00:00Z' }));
        const attempts = await Promise.all(
          Array.from({ length: 4 }, () => new DirectoryStorage(dir).lock('migration-did:plc:abc')),
        );
        const winners = attempts.filter((a) => a.acquired);
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} runs took the lock`);
        await winners[0]!.release();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a run killed at any moment while taking or releasing its lock never leaves one that blocks the next, nor its temporary files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-lock-'));
    const storageModule = new URL('../src/storage.node.ts', import.meta.url).href;
    // A child that takes and releases the lock as fast as it can, killed at a random moment.
    const churn = `const { DirectoryStorage } = await import(${JSON.stringify(storageModule)});
      const s = new DirectoryStorage(${JSON.stringify(dir)});
      process.stdout.write('ready\\n');
      for (;;) { const l = await s.lock('migration-did:plc:abc'); if (l.acquired) await l.release(); }`;
    try {
      for (let round = 0; round < 20; round++) {
        const child = spawn(process.execPath, ['--input-type=module', '-e', churn], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 30));
        child.kill('SIGKILL');
        await new Promise((r) => child.once('close', r));
        const next = await new DirectoryStorage(dir).lock('migration-did:plc:abc');
        assert.ok(next.acquired, `round ${round}: the lock is held by ${next.acquired ? '' : next.holder}`);
        await next.release();
      }
      // Nor any temporary file: the last lock taken removed those the killed children left.
      assert.deepEqual(readdirSync(dir), [], 'no lock, guard or temporary file is left behind');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second migration of the same account stops before changing anything, and says who runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-lock-'));
    const did = 'did:plc:abcdefghijklmnopqrstuvwx';
    const run = () =>
      migrate(
        // Nothing listens on port 9: a run that gets past the lock fails resolving the DID.
        { from: did, to: 'http://127.0.0.1:9', plcUrl: 'http://127.0.0.1:9' },
        {
          storage,
          credentials: anyCredentials,
          onEvent: () => {},
        },
      );
    const storage = new DirectoryStorage(dir);
    try {
      const held = await storage.lock(`migration-${did}`);
      assert.ok(held.acquired);
      const blocked = await run();
      assert.equal(blocked.status, 'failed');
      assert.equal(
        blocked.message,
        `another migration of ${did} is running (pid ${process.pid}). Wait for it to finish, or remove ${join(dir, 'migration-did_plc_abcdefghijklmnopqrstuvwx.lock')} if it crashed. Nothing was changed.`,
      );
      assert.equal(await storage.get(`migration-${did}`), undefined, 'no journal was written');
      await held.release();

      const unblocked = await run();
      assert.equal(unblocked.status, 'failed');
      assert.doesNotMatch(unblocked.message, /another migration/);
      const next = await storage.lock(`migration-${did}`);
      assert.ok(next.acquired, 'a finished run releases its lock');
      await next.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the new server URL', () => {
  it('must be http(s): other schemes stop the run before it starts', async () => {
    const storage = new DirectoryStorage(mkdtempSync(join(tmpdir(), 'portage-url-')));
    try {
      // blob: URLs carry an https origin inside; ftp and file are URLs, but not a server's.
      for (const to of ['ftp://example.com', 'file:///srv/pds', 'blob:https://example.com/abc', 'not a url']) {
        await assert.rejects(
          migrate(
            { from: 'did:plc:abcdefghijklmnopqrstuvwx', to },
            {
              storage,
              credentials: anyCredentials,
              onEvent: () => {},
            },
          ),
          {
            code: 'InvalidUrl',
            message: `the address of the new server is not an http(s) URL: "${to}"`,
            nextStep: { kind: 'need-input', field: 'to', reason: 'invalid', nothingChanged: true },
          },
          to,
        );
      }
    } finally {
      rmSync(storage.dir, { recursive: true, force: true });
    }
  });
});

describe('the other server URLs', () => {
  const did = 'did:plc:abcdefghijklmnopqrstuvwx';
  const bad = { fromPds: 'ftp://old.example', plcUrl: 'file:///plc' };
  const named = { fromPds: 'the old server', plcUrl: 'the PLC directory' };

  it('migrate checks the old server and PLC directory URLs before it starts', async () => {
    const storage = new DirectoryStorage(mkdtempSync(join(tmpdir(), 'portage-url-')));
    const requests: string[] = [];
    const env = {
      storage,
      credentials: anyCredentials,
      onEvent: () => {},
      fetch: (async (input: RequestInfo | URL) => {
        requests.push(String(input));
        throw new Error('no request should be made');
      }) as typeof fetch,
    };
    try {
      await assert.rejects(migrate({ from: did, to: 'http://127.0.0.1:9', fromPds: bad.fromPds }, env), {
        code: 'InvalidUrl',
        message: `the address of the old server is not an http(s) URL: "${bad.fromPds}"`,
        nextStep: { kind: 'need-input', field: 'fromPds', reason: 'invalid', nothingChanged: true },
      });
      await assert.rejects(migrate({ from: did, to: 'http://127.0.0.1:9', plcUrl: bad.plcUrl }, env), {
        code: 'InvalidUrl',
        message: `the address of the PLC directory is not an http(s) URL: "${bad.plcUrl}"`,
        nextStep: { kind: 'need-input', field: 'plcUrl', reason: 'invalid', nothingChanged: true },
      });
      assert.deepEqual(requests, []);
    } finally {
      rmSync(storage.dir, { recursive: true, force: true });
    }
  });

  it('backup checks them too, and says which one is wrong', async () => {
    for (const [field, value] of Object.entries(bad) as [keyof typeof bad, string][]) {
      const result = await backupAccount(
        { from: did, ...(field === 'fromPds' ? { pds: value } : { plcUrl: value }) },
        {
          openBackup: () => Promise.reject(new Error('no backup should be opened')),
          onEvent: () => {},
          fetch: (() => Promise.reject(new Error('no request should be made'))) as typeof fetch,
        },
      );
      assert.equal(result.status, 'failed');
      assert.equal(
        result.message,
        `the address of ${named[field]} is not an http(s) URL: "${value}". Check ${named[field]} address. Nothing was changed.`,
      );
    }
  });
});

describe('DirectoryBackup blobs', () => {
  it('stores bytes only when they hash to the CID, and reads them back (large ones as a Blob)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-backup-'));
    try {
      const backup = await new DirectoryBackup(dir, 'did:plc:abc').open();
      const small = randomBytes(1000);
      const smallCid = formatCid(cidForRaw(small));
      const large = randomBytes(4 * 1024 * 1024 + 1);
      const largeCid = formatCid(cidForRaw(large));

      await assert.rejects(backup.writeBlob(smallCid, randomBytes(1000)), /different bytes/);
      assert.equal(await backup.hasBlob(smallCid), false);
      assert.equal(await backup.readBlob(smallCid), undefined);
      assert.deepEqual(
        readdirSync(dir).filter((n) => n.endsWith('.tmp')),
        [],
        'a rejected blob leaves no file behind',
      );

      await backup.writeBlob(smallCid, small);
      await backup.writeBlob(largeCid, new Blob([large]).stream());
      assert.equal(await backup.hasBlob(smallCid), true);
      assert.equal(await backup.hasBlob(largeCid), true);
      const smallStored = await backup.readBlob(smallCid);
      assert.equal(smallStored?.size, small.length, 'the size is known before the bytes are read');
      const smallBack = await smallStored.read();
      assert.ok(smallBack instanceof Uint8Array);
      assert.deepEqual(Buffer.from(smallBack), small);
      const largeStored = await backup.readBlob(largeCid);
      assert.equal(largeStored?.size, large.length);
      const largeBack = await largeStored.read();
      assert.ok(largeBack instanceof Blob, 'a large blob is read lazily');
      assert.deepEqual(Buffer.from(await largeBack.arrayBuffer()), large);

      // A fresh instance finds what is stored; a file removed behind its back reads as absent.
      const again = await new DirectoryBackup(dir, 'did:plc:abc').open();
      assert.equal(await again.hasBlob(largeCid), true);
      const removedLater = await again.readBlob(smallCid);
      rmSync(join(dir, 'blobs', smallCid));
      assert.equal(await removedLater?.read(), undefined, 'a blob removed after its size was read reads as absent');
      assert.equal(await again.readBlob(smallCid), undefined);
      assert.equal(await again.hasBlob(smallCid), false);
      const largeRemovedLater = await again.readBlob(largeCid);
      rmSync(join(dir, 'blobs', largeCid));
      assert.equal(await largeRemovedLater?.read(), undefined, 'so does a large one');
      assert.equal(await again.hasBlob(largeCid), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps each blob's content type for later runs, skipping lines a kill cut or damage spoiled", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-backup-'));
    try {
      const blobs = [randomBytes(300), randomBytes(400), randomBytes(500), randomBytes(600)];
      const [a, b, c, d] = blobs.map((bytes) => formatCid(cidForRaw(bytes))) as [string, string, string, string];
      const first = await new DirectoryBackup(dir, 'did:plc:abc').open();
      await first.writeBlob(a, blobs[0]!, 'image/png');
      await first.writeBlob(b, blobs[1]!, 'video/mp4');
      await first.writeBlob(c, blobs[2]!, 'bad\r\ntype');
      assert.equal(await first.blobContentType(a), 'image/png');
      assert.equal(await first.blobContentType(c), undefined, 'a type that cannot go into a header is not kept');

      // A later run (a fresh instance) knows the types without asking anyone.
      const second = await new DirectoryBackup(dir, 'did:plc:abc').open();
      assert.equal(await second.blobContentType(a), 'image/png');
      assert.equal(await second.blobContentType(b), 'video/mp4');
      assert.equal(await second.blobContentType(d), undefined);

      // A run killed while appending leaves half a line; a damaged line holds nonsense.
      const types = join(dir, 'blob-types.jsonl');
      const text = readFileSync(types, 'utf8');
      writeFileSync(types, `${text}{"cid":"not a cid","type":"image/png"}\n{"cid":"${d}","type":"ima`);
      const third = await new DirectoryBackup(dir, 'did:plc:abc').open();
      assert.equal(await third.blobContentType(a), 'image/png', 'whole lines still count');
      assert.equal(await third.blobContentType(d), undefined, 'the cut line is skipped');
      await third.writeBlob(d, blobs[3]!, 'image/webp');
      await third.writeBlob(a, blobs[0]!, 'image/jpeg');
      const fourth = await new DirectoryBackup(dir, 'did:plc:abc').open();
      assert.equal(await fourth.blobContentType(d), 'image/webp', 'a line after a cut one starts on its own line');
      assert.equal(await fourth.blobContentType(a), 'image/jpeg', 'the last line for a blob wins');

      // Blobs stored together (parallel transfers) share appends, and every line arrives whole.
      const many = Array.from({ length: 24 }, (_, i) => randomBytes(100 + i));
      const manyCids = many.map((bytes) => formatCid(cidForRaw(bytes)));
      await Promise.all(many.map((bytes, i) => fourth.writeBlob(manyCids[i]!, bytes, `image/x-test-${i}`)));
      const fifthRun = await new DirectoryBackup(dir, 'did:plc:abc').open();
      for (let i = 0; i < many.length; i++) {
        assert.equal(await fifthRun.blobContentType(manyCids[i]!), `image/x-test-${i}`);
      }
      const lines = readFileSync(types, 'utf8').split('\n');
      assert.equal(lines.at(-1), '', 'the file ends with a whole line');
      assert.equal(lines.filter((l) => l.includes('image/x-test-')).length, many.length, 'one line per blob');

      // An unreadable record of types only means fetching again.
      writeFileSync(types, Buffer.from([0xff, 0xfe, 0x00, 0x7b]));
      const fifth = await new DirectoryBackup(dir, 'did:plc:abc').open();
      assert.equal(await fifth.blobContentType(a), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('progress and rendering', () => {
  it('reports counts, bytes and an ETA once a total is known', () => {
    const events: MigrationEvent[] = [];
    const tracker = new ProgressTracker('blobs', 'blobs', (e) => events.push(e), 10, 0);
    tracker.addBytes(1000);
    tracker.addDone();
    tracker.flush();
    const last = events.at(-1)!;
    assert.equal(last.type, 'step-progress');
    if (last.type !== 'step-progress') return;
    assert.equal(last.done, 1);
    assert.equal(last.total, 10);
    assert.equal(last.bytes, 1000);
  });

  it('draws a progress bar with rate and ETA on a terminal, and JSON lines with --json', () => {
    let text = '';
    const out = new Writable({
      write(chunk, _enc, cb) {
        text += String(chunk);
        cb();
      },
    });
    const tty = createRenderer({ json: false, tty: true, out });
    tty({ type: 'step-started', step: 'blobs', title: 'Copy the blobs' });
    tty({
      type: 'step-progress',
      step: 'blobs',
      unit: 'blobs',
      done: 5,
      total: 10,
      bytes: 5 * 1024 * 1024,
      bytesPerSecond: 2 * 1024 * 1024,
      etaSeconds: 75,
    });
    tty({ type: 'step-done', step: 'blobs', summary: 'copied 10 blobs' });
    assert.match(text, /\[#{12}\.{12}\] 5 \/ 10 blobs, 5\.0 MB at 2\.0 MB\/s, ETA 1m15s/);
    assert.match(text, /✓ copied 10 blobs/);

    text = '';
    const json = createRenderer({ json: true, tty: false, out });
    json({ type: 'warning', step: 'repo', message: 'x' });
    assert.deepEqual(JSON.parse(text), { type: 'warning', step: 'repo', message: 'x' });
  });
});
