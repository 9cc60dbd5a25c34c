// Server backups under load, then a kill -9 and a restore. A child process (this file with
// --crash-child) runs a PDS with PORTAGE_BACKUP_DIRECTORY set and takes a backup whenever it
// reads `backup` on stdin; the test writes to it over HTTP the whole time. After the backup the
// child is SIGKILLed mid-load, the backup is restored into a new data directory with
// `portage restore-server`, and a server started on it must hold every write acknowledged before
// the backup began, verifiable repos, the blobs, and working sign-in.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { AtpAgent, type BlobRef } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { ServerBackups } from '../src/backup/server-backups.ts';
import { type BackupManifest, listBackups } from '../src/backup/snapshot.ts';
import { createLogger } from '../src/logger.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { startTestPds, type TestPds } from './harness.ts';

const PORTAGE = join(import.meta.dirname, '..', '..', 'cli', 'bin', 'portage.js');
const PNG_HEADER = Buffer.from('89504e470d0a1a0a', 'hex');
const ACCOUNTS = 4;

/** The server half: a PDS that takes a backup whenever it reads `backup`, printing what it took. */
async function child(dataDir: string, backupDir: string): Promise<void> {
  const pds = await startTestPds({
    dataDir,
    env: { PORTAGE_BACKUP_DIRECTORY: backupDir, PORTAGE_BACKUP_KEEP: '2', PORTAGE_BACKUP_INTERVAL: '1d' },
  });
  const backups = pds.backups!;
  // An empty server's backup first: it also moves the schedule a day away.
  await backups.runNow();
  process.stdout.write(`READY ${pds.url}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'backup') continue;
    const started = Date.now();
    const taken = (await backups.runNow())!;
    const name = taken.folder.split(/[\\/]/).pop()!;
    process.stdout.write(`BACKUP ${name} ${Date.now() - started} ${JSON.stringify(taken.manifest)}\n`);
  }
}

interface Child {
  proc: ChildProcess;
  next(prefix: string): Promise<string>;
}

function startChild(dataDir: string, backupDir: string): Child {
  const proc = spawn(process.execPath, [import.meta.filename, '--crash-child', dataDir, backupDir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: Array<() => void> = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const wake of waiting.splice(0)) wake();
  });
  return {
    proc,
    async next(prefix) {
      for (;;) {
        const i = lines.findIndex((l) => l.startsWith(prefix));
        if (i >= 0) return lines.splice(i, 1)[0]!.slice(prefix.length);
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the child exited before "${prefix}"`);
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          proc.once('exit', () => resolve());
        });
      }
    },
  };
}

function runPortage(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [PORTAGE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Account {
  did: string;
  handle: string;
  password: string;
  agent: AtpAgent;
  blobs: { cid: string; bytes: Buffer }[];
}

async function postWithBlob(account: Account): Promise<string> {
  const bytes = Buffer.concat([PNG_HEADER, randomBytes(2000)]);
  const { data } = await account.agent.uploadBlob(bytes, { encoding: 'image/png' });
  const blob: BlobRef = data.blob;
  account.blobs.push({ cid: blob.ref.toString(), bytes });
  const { uri } = await account.agent.post({
    text: 'a picture',
    embed: { $type: 'app.bsky.embed.images', images: [{ alt: 'noise', image: blob }] },
    createdAt: new Date().toISOString(),
  });
  return uri;
}

if (process.argv[2] === '--crash-child') {
  await child(process.argv[3]!, process.argv[4]!);
} else {
  describe('server backups: under load, kill -9, restore', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-server-backup-'));
    const dataDir = join(dir, 'data');
    const backupDir = join(dir, 'backups');
    const restoredDir = join(dir, 'restored');
    let server: Child;
    const accounts: Account[] = [];
    /** Records whose write was acknowledged, by URI, with when the acknowledgement arrived. */
    const acked = new Map<string, number>();
    let first: { name: string; manifest: BackupManifest };
    let loaded: { name: string; manifest: BackupManifest; requestedAt: number; doneAt: number };
    let restored: TestPds | undefined;
    let url: string;

    before(async () => {
      mkdirSync(dataDir);
      server = startChild(dataDir, backupDir);
      url = await server.next('READY ');
      for (let i = 0; i < ACCOUNTS; i++) {
        const agent = new AtpAgent({ service: url });
        const handle = `user${i}.test`;
        const password = `password-${i}`;
        await agent.createAccount({ handle, email: `user${i}@example.com`, password });
        const account: Account = { did: agent.session!.did, handle, password, agent, blobs: [] };
        accounts.push(account);
        for (let n = 0; n < 3; n++) {
          const { uri } = await agent.post({ text: `post ${n}`, createdAt: new Date().toISOString() });
          acked.set(uri, Date.now());
        }
        for (let n = 0; n < 2; n++) acked.set(await postWithBlob(account), Date.now());
      }
    });

    after(async () => {
      if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
      await restored?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    async function backup(): Promise<{ name: string; ms: number; manifest: BackupManifest }> {
      server.proc.stdin!.write('backup\n');
      const [name, ms, ...json] = (await server.next('BACKUP ')).split(' ');
      return { name: name!, ms: Number(ms), manifest: JSON.parse(json.join(' ')) as BackupManifest };
    }

    it('a backup holds every database, the keys and secrets, and copies the blobs', async () => {
      first = await backup();
      const paths = first.manifest.files.map((f) => f.path);
      for (const path of [
        'account.sqlite',
        'sequencer.sqlite',
        'actors/repo-roots.sqlite',
        'plc/plc.sqlite',
        'secrets.json',
      ]) {
        assert.ok(paths.includes(path), `${path} is in the backup`);
      }
      assert.equal(paths.filter((p) => p.endsWith('/store.sqlite')).length, ACCOUNTS);
      assert.equal(paths.filter((p) => p.endsWith('/signing-key.json')).length, ACCOUNTS);
      assert.equal(first.manifest.accounts, ACCOUNTS);
      assert.ok(first.manifest.lastSeq > 0);
      assert.equal(first.manifest.blobsCopied, ACCOUNTS * 2);
      assert.equal(statSync(join(backupDir, first.name, 'secrets.json')).mode & 0o777, 0o600);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      const last = /^portage_backup_last_success_timestamp_seconds (\S+)$/m.exec(metrics);
      assert.ok(last && Number(last[1]) * 1000 > Date.now() - 60_000, 'the last backup is in /metrics');
      assert.match(metrics, /^portage_backup_failures 0$/m);
      for (const file of first.manifest.files) {
        assert.equal(statSync(join(backupDir, first.name, file.path)).size, file.size);
      }
    });

    it('writes go on during a backup, which copies only the new blobs; the oldest backups are pruned', async () => {
      const extra = await postWithBlob(accounts[0]!);
      acked.set(extra, Date.now());
      let loading = true;
      const load = accounts.map(async (account, i) => {
        for (let n = 0; loading; n++) {
          const { uri } = await account.agent.post({ text: `load ${i} ${n}`, createdAt: new Date().toISOString() });
          acked.set(uri, Date.now());
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const requestedAt = Date.now();
      const taken = await backup();
      const doneAt = Date.now();
      loaded = { ...taken, requestedAt, doneAt };
      const during = [...acked.values()].filter((at) => at > requestedAt && at < doneAt).length;
      assert.ok(during > 0, `writes were acknowledged while the backup ran (${taken.ms} ms)`);
      assert.equal(taken.manifest.blobsCopied, 1, 'only the blob uploaded since the last backup');
      assert.equal(readdirSync(join(backupDir, 'blobs', readdirSync(join(backupDir, 'blobs'))[0]!)).length > 0, true);
      // Keep 2: the empty server's backup is gone.
      assert.deepEqual(await listBackups(backupDir), [first.name, taken.name]);

      // Still loaded when killed.
      await new Promise((resolve) => setTimeout(resolve, 200));
      server.proc.kill('SIGKILL');
      loading = false;
      await Promise.allSettled(load);
    });

    it('portage restore-server brings it back: every write acknowledged before the backup began', async () => {
      const result = await runPortage(['restore-server', join(backupDir, loaded.name), restoredDir]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Restored the backup/);
      assert.match(result.stdout, /portage serve/);
      assert.equal(statSync(join(restoredDir, 'secrets.json')).mode & 0o777, 0o600);

      const pds: TestPds = await startTestPds({ dataDir: restoredDir });
      restored = pds;
      const ackedBefore = [...acked].filter(([, at]) => at < loaded.requestedAt).map(([uri]) => uri);
      assert.ok(ackedBefore.length > ACCOUNTS * 5);
      const present = new Set<string>();
      for (const account of accounts) {
        const agent = new AtpAgent({ service: pds.url });
        await agent.login({ identifier: account.handle, password: account.password });
        assert.equal(agent.session!.did, account.did);
        const doc = (await (await fetch(`${pds.plcUrl}/${account.did}`)).json()) as {
          verificationMethod: { id: string; publicKeyMultibase: string }[];
        };
        const key = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'))!;
        const latest = (await agent.com.atproto.sync.getLatestCommit({ did: account.did })).data;
        const listed = (await agent.com.atproto.sync.listRepos({})).data.repos.find((r) => r.did === account.did);
        assert.equal(listed?.head, latest.cid, 'listRepos names the restored head');
        assert.equal(listed?.rev, latest.rev);
        const car = (await agent.com.atproto.sync.getRepo({ did: account.did })).data;
        const verified = await verifyRepoCar(car, account.did, `did:key:${key.publicKeyMultibase}`);
        for (const c of verified.creates) present.add(`at://${account.did}/${c.collection}/${c.rkey}`);
        for (const blob of account.blobs) {
          const res = await fetch(`${pds.url}/xrpc/com.atproto.sync.getBlob?did=${account.did}&cid=${blob.cid}`);
          assert.equal(res.status, 200);
          assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.bytes);
        }
        // And it takes writes again.
        await agent.post({ text: 'after the restore', createdAt: new Date().toISOString() });
      }
      const lost = ackedBefore.filter((uri) => !present.has(uri));
      assert.deepEqual(lost, [], 'no acknowledged write from before the backup is lost');

      // The firehose holds one #commit create for every restored record (none missed, none twice).
      const created = new Map<string, number>();
      for (let cursor = 0; ;) {
        const events = pds.ctx.sequencer.readAfter(cursor, 500);
        if (events.length === 0) break;
        for (const event of events) {
          cursor = event.seq;
          const { t, body } = decodeFrame(event.frame);
          if (t !== '#commit') continue;
          for (const op of body.ops as { action: string; path: string }[]) {
            const uri = `at://${body.repo as string}/${op.path}`;
            if (op.action === 'create') created.set(uri, (created.get(uri) ?? 0) + 1);
          }
        }
      }
      for (const uri of present) {
        if (uri.includes('/app.bsky.feed.post/')) assert.equal(created.get(uri), 1, `one #commit creates ${uri}`);
      }
    });

    it('restore-server refuses a non-empty data directory and a damaged backup', async () => {
      const busy = join(dir, 'busy');
      mkdirSync(busy);
      writeFileSync(join(busy, 'something'), 'x');
      const refused = await runPortage(['restore-server', join(backupDir, loaded.name), busy]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /is not empty; restore into an empty or new directory/);
      assert.deepEqual(readdirSync(busy), ['something']);

      const damaged = join(backupDir, 'damaged');
      cpSync(join(backupDir, loaded.name), damaged, { recursive: true });
      const accountDb = join(damaged, 'account.sqlite');
      const bytes = readFileSync(accountDb);
      bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
      writeFileSync(accountDb, bytes);
      const target = join(dir, 'from-damaged');
      const failed = await runPortage(['restore-server', damaged, target]);
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /damaged: account\.sqlite/);
      assert.equal(existsSync(target), false, 'nothing is left behind');

      const notBackup = await runPortage(['restore-server', dir, join(dir, 'other')]);
      assert.equal(notBackup.code, 1);
      assert.match(notBackup.stderr, /not a Portage server backup/);
    });

    it('portage backup-server takes the same backup of a data directory, which restores', async () => {
      const out = join(dir, 'one-off');
      const taken = await runPortage(['backup-server', '--out', out, '--data', restoredDir]);
      assert.equal(taken.code, 0, taken.stderr);
      assert.match(taken.stdout, new RegExp(`Backed up ${ACCOUNTS} accounts`));
      const [name] = await listBackups(out);
      const again = await runPortage(['restore-server', join(out, name!), join(dir, 'again')]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`${ACCOUNTS * 2 + 1} blobs`));

      const usage = await runPortage(['backup-server']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--out is required/);
    });
  });

  describe('server backups: the shared blobs folder', () => {
    it('keeps a deleted blob while a kept backup needs it, and drops it after', async () => {
      const backupDir = mkdtempSync(join(tmpdir(), 'portage-backup-blobs-'));
      const pds = await startTestPds({ env: { PORTAGE_BACKUP_DIRECTORY: backupDir, PORTAGE_BACKUP_KEEP: '1' } });
      try {
        const agent = new AtpAgent({ service: pds.url });
        await agent.createAccount({ handle: 'blobs.test', email: 'blobs@example.com', password: 'password' });
        const account: Account = { did: agent.session!.did, handle: 'blobs.test', password: '', agent, blobs: [] };
        await postWithBlob(account);
        const deleted = await postWithBlob(account);
        const backups = pds.backups!;
        await backups.runNow();
        const shared = () => new Set(readdirSync(join(backupDir, 'blobs'), { recursive: true }).map(String));
        const [keptBlob, deletedBlob] = account.blobs.map((b) => b.cid);
        const inShared = (cid: string) => [...shared()].some((p) => p.endsWith(cid));
        assert.ok(inShared(keptBlob!) && inShared(deletedBlob!));

        await agent.deletePost(deleted);
        // The only kept backup is the one just taken, which no longer references the blob.
        await backups.runNow();
        assert.equal(inShared(deletedBlob!), false, 'the deleted blob left with the last backup that needed it');
        assert.ok(inShared(keptBlob!), 'a blob still in use stays');
      } finally {
        await pds.close();
        rmSync(backupDir, { recursive: true, force: true });
      }
    });
  });

  describe('ServerBackups schedule', () => {
    it('takes a backup every interval from start-up, keeps the newest N, and close abandons a running one', async () => {
      const backupDir = mkdtempSync(join(tmpdir(), 'portage-backup-schedule-'));
      const pds = await startTestPds({ env: { PORTAGE_BACKUP_DIRECTORY: backupDir } });
      try {
        const agent = new AtpAgent({ service: pds.url });
        await agent.createAccount({ handle: 'sched.test', email: 'sched@example.com', password: 'password' });
        const { config } = pds.ctx;
        const scheduled = new ServerBackups({
          directory: join(backupDir, 'scheduled'),
          intervalMs: 200,
          keep: 2,
          logger: createLogger('silent'),
          startDelayMs: 0,
          sources: {
            dataDirectory: config.dataDirectory,
            accountDbPath: config.accountDbPath,
            sequencerDbPath: pds.ctx.sequencer.db.name,
            actorStoreDirectory: config.actorStoreDirectory,
            blobDirectory: config.blobstoreDiskLocation,
            secretsPath: config.secretsPath,
            version: config.version,
          },
        });
        await scheduled.start();
        const deadline = Date.now() + 10_000;
        while ((await listBackups(join(backupDir, 'scheduled'))).length < 2 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
        await scheduled.stop();
        assert.equal((await listBackups(join(backupDir, 'scheduled'))).length, 2, 'the newest two are kept');

        // The server's own (a day apart, the first 5 s after start): taken now, then one abandoned.
        const backups = pds.backups!;
        assert.ok((await backups.runNow())?.manifest.accounts === 1);
        const running = backups.runNow();
        await pds.close();
        assert.equal(await running, undefined, 'abandoned when the server closed');
        assert.deepEqual(
          readdirSync(backupDir).filter((n) => n.startsWith('.')),
          [],
          'no unfinished folder left behind',
        );
      } finally {
        await pds.close();
        rmSync(backupDir, { recursive: true, force: true });
      }
    });
  });
}
