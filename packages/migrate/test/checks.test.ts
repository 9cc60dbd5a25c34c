/**
 * The checks before a move changes anything: a blob larger than the new server takes, a handle
 * that is taken, malformed or outside the new server's domains, a malformed email, and server
 * clocks too far apart are each refused at the checks step with a typed next step, and nothing
 * was sent that changes anything on either server. A deactivated old account still moves.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { XrpcClient, XrpcClientError } from '@portage/atproto/xrpc/client';
import { migrate, type MigrationOptions, type MigrationResult } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import type { NextStep } from '../src/next-steps.ts';
import { MemoryStorage } from '../src/storage.ts';
import { outboxToken, startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { forward, listenOnLoopback } from './helpers/fault-proxy.ts';

let old: TestPds;
let neu: TestPds;
/** A new server that takes blobs up to 50 KB. */
let small: TestPds;
/** `neu` behind a proxy whose Date header runs ten minutes fast. */
let fastClock: { url: string; close(): Promise<void> };

interface OldAccount {
  did: string;
  handle: string;
  password: string;
  email: string;
  client: XrpcClient;
}

before(async () => {
  old = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:old.test' } });
  neu = await startTestPds({ plcUrl: old.plcUrl, env: { PDS_SERVICE_DID: 'did:web:new.test' } });
  small = await startTestPds({
    plcUrl: old.plcUrl,
    env: { PDS_SERVICE_DID: 'did:web:small.test', PDS_BLOB_UPLOAD_LIMIT: String(50_000) },
  });
  const target = new URL(neu.url);
  fastClock = await listenOnLoopback(
    createServer((req, res) =>
      forward(target, req, res, (up) => {
        res.writeHead(up.statusCode ?? 502, { ...up.headers, date: new Date(Date.now() + 10 * 60_000).toUTCString() });
        up.pipe(res);
      }),
    ),
  );
});

after(async () => {
  await fastClock?.close();
  for (const pds of [small, neu, old]) await pds?.close();
});

async function oldAccount(name: string, blobBytes: number[]): Promise<OldAccount> {
  const password = `${name}-password`;
  const email = `${name}@example.com`;
  const handle = `${name}.test`;
  const session = await new XrpcClient({ service: old.url }).procedure<{ did: string; accessJwt: string }>(
    'com.atproto.server.createAccount',
    { handle, email, password },
  );
  const client = new XrpcClient({
    service: old.url,
    headers: () => ({ authorization: `Bearer ${session.accessJwt}` }),
  });
  for (const size of blobBytes) {
    const res = await client.request('com.atproto.repo.uploadBlob', {
      method: 'POST',
      body: randomBytes(size),
      encoding: 'image/jpeg',
    });
    const { blob } = (await res.json()) as { blob: unknown };
    await client.procedure('com.atproto.repo.createRecord', {
      repo: session.did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: blob, createdAt: new Date().toISOString() },
    });
  }
  return { did: session.did, handle, password, email, client };
}

/** Calls that change something on a server: none may be sent before the checks pass. */
const CHANGING = /createAccount|importRepo|uploadBlob|putPreferences|activateAccount|deactivateAccount|PlcOperation/;

async function move(
  account: OldAccount,
  to: string,
  extra: Partial<MigrationOptions> = {},
): Promise<{ result: MigrationResult; events: MigrationEvent[]; changing: string[]; blobReads: BlobRead[] }> {
  const events: MigrationEvent[] = [];
  const changing: string[] = [];
  const blobReads: BlobRead[] = [];
  const watchingFetch: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (CHANGING.test(url)) changing.push(url.replace(/^.*\/xrpc\//, '').replace(/\?.*$/, ''));
    const res = await fetch(input, init);
    if (url.includes('/xrpc/com.atproto.sync.getBlob?') && init?.method !== 'HEAD') {
      blobReads.push({ signedIn: new Headers(init?.headers).has('authorization'), status: res.status });
    }
    return res;
  };
  const result = await migrate(
    { from: account.did, fromPds: old.url, to, plcUrl: old.plcUrl, ...extra },
    {
      storage: new MemoryStorage(),
      fetch: watchingFetch,
      credentials: {
        oldPassword: async () => account.password,
        newPassword: async () => account.password,
        authFactorToken: async () => undefined,
        plcToken: async (requested) => (requested ? outboxToken(old.ctx.mailer.outboxPath, account.email) : undefined),
      },
      onEvent: (e) => events.push(e),
    },
  );
  return { result, events, changing, blobReads };
}

/** A getBlob sent to the old server: with the session or without, and how it was answered. */
interface BlobRead {
  signedIn: boolean;
  status: number;
}

/** The run stopped at the checks with `next`, and changed nothing anywhere. */
async function assertRefusedAtChecks(
  run: { result: MigrationResult; events: MigrationEvent[]; changing: string[] },
  account: OldAccount,
  server: string,
  next: NextStep,
  message: RegExp,
): Promise<void> {
  assert.equal(run.result.status, 'failed', run.result.message);
  const failed = run.events.find((e) => e.type === 'step-failed');
  assert.ok(failed?.type === 'step-failed', 'a step failed');
  assert.equal(failed.step, 'checks');
  assert.deepEqual(failed.nextStep, { ...next, nothingChanged: true });
  assert.match(failed.message, message);
  assert.doesNotMatch(failed.next, /--/, 'the engine names no flag');
  assert.deepEqual(run.changing, [], 'no call that changes anything was sent');
  await assert.rejects(
    new XrpcClient({ service: server }).query('com.atproto.sync.getRepoStatus', { did: account.did }),
    (err: unknown) => err instanceof XrpcClientError && err.error === 'RepoNotFound',
    'the new server never heard of the account',
  );
  const status = await account.client.query<{ activated: boolean }>('com.atproto.server.checkAccountStatus');
  assert.equal(status.activated, true, 'the old account is untouched');
}

describe('checks before a move changes anything', () => {
  let mover: OldAccount;
  before(async () => {
    mover = await oldAccount('mover', [1000, 120_000, 2000]);
    await new XrpcClient({ service: neu.url }).procedure('com.atproto.server.createAccount', {
      handle: 'taken.test',
      email: 'taken@example.com',
      password: 'taken-password',
    });
  });

  it('a blob larger than the new server takes, before the account is created', async () => {
    const run = await move(mover, small.url);
    const failed = run.events.find((e) => e.type === 'step-failed');
    const cid = failed?.type === 'step-failed' && failed.nextStep.kind === 'blob-too-large' ? failed.nextStep.cid : '';
    await assertRefusedAtChecks(
      run,
      mover,
      small.url,
      { kind: 'blob-too-large', cid, bytes: 120_000, limit: 50_000 },
      /1 blob\(s\) are larger than the 48\.8 KB the new server takes/,
    );
  });

  it('a handle another account holds on the new server', async () => {
    const run = await move(mover, neu.url, { newHandle: 'taken.test' });
    await assertRefusedAtChecks(
      run,
      mover,
      neu.url,
      { kind: 'need-input', field: 'newHandle', reason: 'taken' },
      /belongs to another account/,
    );
  });

  it('a malformed handle, and one outside the new server domains', async () => {
    for (const newHandle of ['bad_handle!.test', 'mover.example.org']) {
      const run = await move(mover, neu.url, { newHandle });
      await assertRefusedAtChecks(
        run,
        mover,
        neu.url,
        { kind: 'need-input', field: 'newHandle', reason: 'invalid' },
        /not a valid handle|gives handles ending in/,
      );
    }
  });

  it('a malformed email', async () => {
    const run = await move(mover, neu.url, { newEmail: 'not-an-address' });
    await assertRefusedAtChecks(
      run,
      mover,
      neu.url,
      { kind: 'need-input', field: 'newEmail', reason: 'invalid' },
      /is not an email address/,
    );
  });

  it('server clocks too far apart for the short-lived account-creation token', async () => {
    const run = await move(mover, fastClock.url);
    const failed = run.events.find((e) => e.type === 'step-failed');
    const skew =
      failed?.type === 'step-failed' && failed.nextStep.kind === 'fix-clock' ? failed.nextStep.skewSeconds : 0;
    assert.ok(skew > 550 && skew < 650, `the new server is about ten minutes off (${skew} s)`);
    await assertRefusedAtChecks(
      run,
      mover,
      neu.url,
      { kind: 'fix-clock', clock: 'new-server', skewSeconds: skew },
      /the clocks of the two servers differ by \d+ seconds/,
    );
  });

  it('a deactivated old account moves all the same, and stays deactivated', async () => {
    const quiet = await oldAccount('quiet', [3000]);
    await quiet.client.procedure('com.atproto.server.deactivateAccount', {});
    const run = await move(quiet, neu.url);
    assert.equal(run.result.status, 'done', run.result.message);
    assert.ok(
      run.events.some(
        (e) => e.type === 'warning' && e.step === 'checks' && /old account is deactivated/.test(e.message),
      ),
    );
    const signedIn = await new XrpcClient({ service: neu.url }).procedure<{ active?: boolean }>(
      'com.atproto.server.createSession',
      { identifier: quiet.did, password: quiet.password },
    );
    assert.notEqual(signedIn.active, false, 'the new account is active');
    const oldStatus = await quiet.client.query<{ activated: boolean }>('com.atproto.server.checkAccountStatus');
    assert.equal(oldStatus.activated, false);
    // Its blobs are served to its owner only: read without the session first, then signed in.
    assert.deepEqual(run.blobReads, [
      { signedIn: false, status: 400 },
      { signedIn: true, status: 200 },
    ]);
  });

  it('an active account has its blobs read without the session (in a browser: no CORS preflight per blob)', async () => {
    const busy = await oldAccount('busy', [2000, 3000, 4000]);
    const run = await move(busy, neu.url);
    assert.equal(run.result.status, 'done', run.result.message);
    assert.deepEqual(run.blobReads, [
      { signedIn: false, status: 200 },
      { signedIn: false, status: 200 },
      { signedIn: false, status: 200 },
    ]);
  });
});
