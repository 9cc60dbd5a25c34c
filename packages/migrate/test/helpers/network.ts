/**
 * Test peers for migration tests: one reference PLC and reference PDSes from @atproto/dev-env
 * (test oracles only), started by test/support/reference-peers.ts, with every file they write
 * under a temporary folder that close() removes. Plus helpers to fill an account and to run the CLI.
 */
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AtpAgent } from '@atproto/api';
import type { TestPds, TestPlc } from '@atproto/dev-env';
import { startReferencePds, startReferencePlc } from '../../../../test/support/reference-peers.ts';

export const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
export const CLI = join(ROOT, 'packages', 'cli', 'bin', 'portage.js');

export interface Network {
  dir: string;
  plc: TestPlc;
  pdses: TestPds[];
  addPds(opts?: Record<string, unknown>): Promise<TestPds>;
  close(): Promise<void>;
}

export async function startNetwork(pdsCount = 2, pdsOpts: Record<string, unknown> = {}): Promise<Network> {
  const dir = mkdtempSync(join(tmpdir(), 'portage-migrate-'));
  const plc = await startReferencePlc(dir);
  const pdses: TestPds[] = [];
  const addPds = async (opts: Record<string, unknown> = {}) => {
    const pds = await startReferencePds(dir, plc.url, {
      serviceDid: `did:web:pds-${pdses.length}.test`,
      ...pdsOpts,
      ...opts,
    });
    pdses.push(pds);
    return pds;
  };
  for (let i = 0; i < pdsCount; i++) await addPds();
  return {
    dir,
    plc,
    pdses,
    addPds,
    async close() {
      for (const pds of pdses) await pds.close().catch(() => {});
      await plc.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Account {
  did: string;
  handle: string;
  password: string;
  agent: AtpAgent;
  blobCids: string[];
}

/** Creates an account with `records` plain records, `blobs` random blobs each held by a record, and preferences. */
export async function createAccount(
  pds: { url: string },
  name: string,
  opts: { records?: number; blobs?: number; blobSize?: number } = {},
): Promise<Account> {
  const agent = new AtpAgent({ service: pds.url });
  const handle = `${name}.test`;
  const password = `${name}-password`;
  await agent.createAccount({ handle, email: `${name}@example.com`, password });
  const did = agent.session!.did;
  const records = opts.records ?? 20;
  for (let i = 0; i < records; i += 200) {
    const writes = [];
    for (let j = i; j < Math.min(records, i + 200); j++) {
      writes.push({
        $type: 'com.atproto.repo.applyWrites#create' as const,
        collection: 'com.example.note',
        value: { $type: 'com.example.note', text: `note ${j} ${'x'.repeat(40)}`, createdAt: new Date().toISOString() },
      });
    }
    await agent.com.atproto.repo.applyWrites({ repo: did, writes, validate: false });
  }
  const blobCids: string[] = [];
  const size = opts.blobSize ?? 20_000;
  for (let i = 0; i < (opts.blobs ?? 5); i++) {
    const { data } = await agent.com.atproto.repo.uploadBlob(randomBytes(size), { encoding: 'image/jpeg' });
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
    });
    blobCids.push(data.blob.ref.toString());
  }
  await agent.app.bsky.actor.putPreferences({
    preferences: [
      { $type: 'app.bsky.actor.defs#adultContentPref', enabled: true },
      {
        $type: 'app.bsky.actor.defs#savedFeedsPrefV2',
        items: [{ id: 'a1', type: 'timeline', value: 'following', pinned: true }],
      },
    ],
  });
  return { did, handle, password, agent, blobCids };
}

/** The PLC token the reference emailed (its dev mailer only logs; read it from its account DB). */
export async function plcToken(pds: TestPds, did: string): Promise<string | undefined> {
  const db = (pds.ctx.accountManager as unknown as { db: { db: ReferenceDb } }).db.db;
  const row = await db
    .selectFrom('email_token')
    .selectAll()
    .where('did', '=', did)
    .where('purpose', '=', 'plc_operation')
    .executeTakeFirst();
  return row?.token;
}

/** Makes the stored PLC token look an hour old (the reference accepts them for 15 minutes). */
export async function expirePlcToken(pds: TestPds, did: string): Promise<void> {
  const db = (pds.ctx.accountManager as unknown as { db: { db: ReferenceDb } }).db.db;
  await db
    .updateTable('email_token')
    .set({ requestedAt: new Date(Date.now() - 3600_000).toISOString() })
    .where('did', '=', did)
    .where('purpose', '=', 'plc_operation')
    .execute();
}

/** The slice of the reference's Kysely account DB the tests touch. */
interface ReferenceDb {
  selectFrom(table: string): {
    selectAll(): {
      where(
        c: string,
        op: string,
        v: string,
      ): { where(c: string, op: string, v: string): { executeTakeFirst(): Promise<{ token?: string } | undefined> } };
    };
  };
  updateTable(table: string): {
    set(values: Record<string, string>): {
      where(
        c: string,
        op: string,
        v: string,
      ): { where(c: string, op: string, v: string): { execute(): Promise<unknown> } };
    };
  };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: { type: string; [k: string]: unknown }[];
}

/** The environment that gives `portage migrate` the account's password for both servers. */
export function accountPasswordEnv(account: Account, extra: Record<string, string> = {}): Record<string, string> {
  return { PORTAGE_OLD_PASSWORD: account.password, PORTAGE_NEW_PASSWORD: account.password, ...extra };
}

/**
 * Arguments for `portage migrate` with JSON events, from `fromPds` to `to` on the test PLC.
 * Without `backupDir` the run keeps no local backup. `extra` comes last, so it overrides.
 */
export function migrateCliArgs(
  opts: { from: string; fromPds: string; to: string; plcUrl: string; stateDir: string; backupDir?: string },
  extra: string[] = [],
): string[] {
  return [
    'migrate',
    '--from',
    opts.from,
    '--from-pds',
    opts.fromPds,
    '--to',
    opts.to,
    '--plc-url',
    opts.plcUrl,
    '--state-dir',
    opts.stateDir,
    ...(opts.backupDir === undefined ? ['--no-backup'] : ['--backup-dir', opts.backupDir]),
    '--json',
    ...extra,
  ];
}

/**
 * How long one CLI run may take in a test before it counts as hung. Every run here takes seconds;
 * a run that never ends would otherwise keep its test file, and the whole suite, waiting forever.
 */
const CLI_HANG_MS = Number(process.env.PORTAGE_TEST_CLI_HANG_MS ?? 120_000);
let reportDir: string | undefined;

/**
 * Starts `portage <args>` in a child process from the repository root, stdout and stderr piped.
 * A run still going after CLI_HANG_MS is killed and the child emits an 'error' naming it, with
 * its last output and what it was waiting on (Node's diagnostic report: its stack and open handles).
 */
export function spawnCli(args: string[], env: Record<string, string>): ChildProcessByStdio<null, Readable, Readable> {
  const reports = (reportDir ??= reportsFolder());
  const child = spawn(
    process.execPath,
    ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reports}`, CLI, ...args],
    { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let tail = '';
  const keep = (chunk: unknown) => {
    tail = (tail + String(chunk)).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const timer = setTimeout(() => {
    void describeWait(child.pid!, reports).then((waitingOn) => {
      if (child.exitCode !== null || child.signalCode !== null) return; // it ended meanwhile
      child.kill('SIGKILL');
      child.emit(
        'error',
        new Error(
          `portage ${args[0]} did not finish within ${CLI_HANG_MS / 1000} s and was killed.\n` +
            `Its last output:\n${tail}\n${waitingOn}`,
        ),
      );
    });
  }, CLI_HANG_MS);
  child.on('close', () => clearTimeout(timer));
  return child;
}

/** A folder for the CLI runs' diagnostic reports, removed when this process exits. */
function reportsFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portage-cli-reports-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The JavaScript stack and the open handles of a running CLI, from the report SIGUSR2 makes it write. */
async function describeWait(pid: number, dir: string): Promise<string> {
  try {
    process.kill(pid, 'SIGUSR2');
  } catch {
    return 'No diagnostic report: the process is gone.';
  }
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const name = readdirSync(dir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.json'));
    if (!name) continue;
    try {
      const report = JSON.parse(readFileSync(join(dir, name), 'utf8')) as {
        javascriptStack?: { message?: string; stack?: string[] };
        libuv?: { type: string; is_active?: boolean; is_referenced?: boolean; [k: string]: unknown }[];
      };
      const handles = (report.libuv ?? [])
        .filter((h) => h.is_active && h.is_referenced)
        .map((h) => `  ${JSON.stringify(h)}`);
      const stack = report.javascriptStack?.stack ?? [];
      return `Its stack: ${report.javascriptStack?.message ?? ''}\n${stack.join('\n')}\nIts open handles:\n${handles.join('\n')}`;
    } catch {
      // Still being written.
    }
  }
  return 'No diagnostic report came within 5 s.';
}

/**
 * Runs `portage <args>` in a child process (asynchronously: the servers live in this process
 * and must keep answering). `killAfterMs` sends SIGKILL after that long.
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  opts: { killAfterMs?: number } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer =
      opts.killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as CliRun['events'][number];
          } catch {
            return { type: 'unparsable', line: l };
          }
        });
      resolve({ code, signal, stdout, stderr, events });
    });
  });
}

export interface KillRun {
  code: number | null;
  killed: boolean;
  lastStep: string | undefined;
  /** What the run printed on stderr: the reason, when it failed. */
  stderr: string;
}

/** Runs the CLI and SIGKILLs it after `afterEvents` JSON events plus `delayMs`. */
export function runAndKill(
  args: string[],
  env: Record<string, string>,
  afterEvents: number,
  delayMs: number,
): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env);
    let seen = 0;
    let buffer = '';
    let lastStep: string | undefined;
    let armed = false;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        seen++;
        const event = JSON.parse(line) as { step?: string };
        if (event.step) lastStep = event.step;
        if (!armed && seen >= afterEvents) {
          armed = true;
          setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, killed: signal === 'SIGKILL', lastStep, stderr }));
  });
}

/** The records of a repo as `collection/rkey -> cid`, from its full CAR export, verified. */
export async function repoRecords(pdsUrl: string, did: string): Promise<Map<string, string>> {
  const { verifyRepoCar } = await import('@atproto/repo');
  const res = await fetch(`${pdsUrl}/xrpc/com.atproto.sync.getRepo?${new URLSearchParams({ did })}`);
  if (!res.ok) throw new Error(`getRepo on ${pdsUrl}: ${res.status}`);
  const repo = await verifyRepoCar(new Uint8Array(await res.arrayBuffer()), did);
  return new Map(repo.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
}

export interface MigratedState {
  plcPds: string | undefined;
  newActive: boolean;
  oldActive: boolean;
}

export interface Snapshot {
  records: Map<string, string>;
  preferences: unknown[];
}

/** What the account holds on its old server, taken before the old account is deactivated. */
export async function snapshot(from: TestPds, account: Account): Promise<Snapshot> {
  const records = await repoRecords(from.url, account.did);
  const prefs = await account.agent.app.bsky.actor.getPreferences();
  return { records, preferences: prefs.data.preferences };
}

/** Checks everything a finished migration must show, throwing with what is wrong. */
export async function checkMigrated(
  net: Network,
  from: TestPds,
  to: TestPds,
  account: Account,
  before: Snapshot,
): Promise<void> {
  const newRecords = await repoRecords(to.url, account.did);
  assert.ok(before.records.size > 0);
  assert.deepEqual([...newRecords].sort(), [...before.records].sort(), 'the new repo holds the same records');
  for (const cid of account.blobCids) {
    const res = await fetch(
      `${to.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
    );
    assert.equal(res.status, 200, `blob ${cid} is on the new server`);
    await res.arrayBuffer();
  }
  const doc = (await (await fetch(`${net.plc.url}/${account.did}`)).json()) as {
    service: { serviceEndpoint: string }[];
  };
  assert.equal(doc.service[0]!.serviceEndpoint, to.url, 'the PLC document names the new PDS');
  const newAgent = new AtpAgent({ service: to.url });
  await newAgent.login({ identifier: account.did, password: account.password });
  const status = await newAgent.com.atproto.server.checkAccountStatus();
  assert.equal(status.data.activated, true, 'the new account is active');
  const newPrefs = await newAgent.app.bsky.actor.getPreferences();
  assert.deepEqual(newPrefs.data.preferences, before.preferences, 'equal preferences');
  const oldAgent = new AtpAgent({ service: from.url });
  await oldAgent.login({ identifier: account.did, password: account.password });
  assert.equal(oldAgent.session?.active, false, 'the old account is deactivated');
}
