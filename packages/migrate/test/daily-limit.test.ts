/**
 * A move with more blobs than the new server takes in a day: the reference PDS allows about 1,000
 * uploadBlob calls a day per IP, here Portage with the same 1,000 over a short window. The first
 * run copies what it may and stops cleanly, saying when to go on (status resume-later, a typed
 * resume-after next step, the time saved in the journal); a run before that time stops again at
 * once; the run after it finishes, verified, with no blob uploaded twice.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { XrpcClient } from '@portage/atproto/xrpc/client';
import { migrate, type MigrationResult } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { journalKey } from '../src/journal.ts';
import { MemoryStorage } from '../src/storage.ts';
import { outboxToken, startTestPds, type TestPds } from '../../pds/test/harness.ts';

const BLOBS = 1200;
const DAILY_UPLOADS = 1000;
/** The test's "day": long enough for the first run's 1,000 uploads, short enough to wait out. */
const WINDOW_MS = 30_000;

let old: TestPds;
let neu: TestPds;

before(async () => {
  old = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:old.test' } });
  neu = await startTestPds({
    plcUrl: old.plcUrl,
    env: { PDS_SERVICE_DID: 'did:web:new.test', PDS_RATE_LIMITS_ENABLED: 'true' },
    rateLimits: { uploadBlob: [{ points: DAILY_UPLOADS, windowMs: WINDOW_MS }] },
  });
});

after(async () => {
  await neu?.close();
  await old?.close();
});

/** An account on the old server with `count` tiny blobs, each held by a record. */
async function accountWithBlobs(count: number): Promise<{ did: string; password: string; email: string }> {
  const anon = new XrpcClient({ service: old.url });
  const password = 'daily-password';
  const email = 'daily@example.com';
  const session = await anon.procedure<{ did: string; accessJwt: string }>('com.atproto.server.createAccount', {
    handle: 'daily.test',
    email,
    password,
  });
  const authed = new XrpcClient({
    service: old.url,
    headers: () => ({ authorization: `Bearer ${session.accessJwt}` }),
  });
  const refs: unknown[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async () => {
        const res = await authed.request('com.atproto.repo.uploadBlob', {
          method: 'POST',
          body: randomBytes(64),
          encoding: 'application/octet-stream',
        });
        return ((await res.json()) as { blob: unknown }).blob;
      }),
    );
    refs.push(...batch);
  }
  for (let i = 0; i < refs.length; i += 200) {
    await authed.procedure('com.atproto.repo.applyWrites', {
      repo: session.did,
      validate: false,
      writes: refs.slice(i, i + 200).map((file) => ({
        $type: 'com.atproto.repo.applyWrites#create',
        collection: 'com.example.file',
        value: { $type: 'com.example.file', file, createdAt: new Date().toISOString() },
      })),
    });
  }
  return { did: session.did, password, email };
}

describe('a daily upload limit', () => {
  it('stops the move cleanly with the time to go on, and a later run finishes it verified', async () => {
    const account = await accountWithBlobs(BLOBS);
    const storage = new MemoryStorage();
    let uploaded = 0;
    const countingFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input instanceof Request ? input.url : input).includes('com.atproto.repo.uploadBlob') && res.ok) {
        uploaded++;
      }
      return res;
    };
    const run = async (): Promise<{ result: MigrationResult; events: MigrationEvent[] }> => {
      const events: MigrationEvent[] = [];
      const result = await migrate(
        { from: account.did, fromPds: old.url, to: neu.url, plcUrl: old.plcUrl, longestWaitMs: 1000 },
        {
          storage,
          fetch: countingFetch,
          credentials: {
            oldPassword: async () => account.password,
            newPassword: async () => account.password,
            authFactorToken: async () => undefined,
            plcToken: async (requested) =>
              requested ? outboxToken(old.ctx.mailer.outboxPath, account.email) : undefined,
          },
          onEvent: (e) => events.push(e),
        },
      );
      return { result, events };
    };

    const first = await run();
    assert.equal(first.result.status, 'resume-later', first.result.message);
    assert.equal(first.result.next?.kind, 'resume-after');
    const at = first.result.next.kind === 'resume-after' ? Date.parse(first.result.next.at) : NaN;
    assert.ok(at > Date.now(), 'the time to go on is ahead');
    assert.match(
      first.result.message,
      /^the new server's request budget is spent until .*; everything copied so far is kept$/,
    );
    assert.equal(uploaded, DAILY_UPLOADS, 'it moved what the budget allowed');
    const journal = JSON.parse((await storage.get(journalKey(account.did)))!) as { resumeAfter?: string };
    assert.equal(journal.resumeAfter, new Date(at).toISOString(), 'the journal keeps when to go on');
    assert.ok(!first.events.some((e) => e.type === 'step-started' && e.step === 'identity'), 'identity untouched');
    const finished = first.events.find((e) => e.type === 'finished');
    assert.ok(finished?.type === 'finished' && finished.nextStep?.kind === 'resume-after');

    // Before the time: stops again at once, uploading nothing.
    const early = await run();
    assert.equal(early.result.status, 'resume-later', early.result.message);
    assert.equal(uploaded, DAILY_UPLOADS);

    await new Promise((r) => setTimeout(r, at - Date.now() + 200));
    const second = await run();
    assert.equal(second.result.status, 'done', second.result.message);
    assert.equal(uploaded, BLOBS, 'every blob uploaded exactly once');
    const status = await new XrpcClient({ service: neu.url }).query<{ did: string }>(
      'com.atproto.identity.resolveHandle',
      { handle: 'daily.test' },
    );
    assert.equal(status.did, account.did);
    const missing = await neuMissingBlobs(account);
    assert.equal(missing, 0);
    const after = JSON.parse((await storage.get(journalKey(account.did)))!) as { resumeAfter?: string };
    assert.equal(after.resumeAfter, undefined, 'the pause is forgotten once the blobs are in');
  });
});

/** Blobs the new server still lacks, asked as the account. */
async function neuMissingBlobs(account: { did: string; password: string }): Promise<number> {
  const anon = new XrpcClient({ service: neu.url });
  const s = await anon.procedure<{ accessJwt: string }>('com.atproto.server.createSession', {
    identifier: account.did,
    password: account.password,
  });
  const authed = new XrpcClient({ service: neu.url, headers: () => ({ authorization: `Bearer ${s.accessJwt}` }) });
  const status = await authed.query<{ expectedBlobs: number; importedBlobs: number; activated: boolean }>(
    'com.atproto.server.checkAccountStatus',
  );
  assert.equal(status.activated, true);
  assert.equal(status.expectedBlobs, BLOBS);
  return status.expectedBlobs - status.importedBlobs;
}
