/**
 * The engine against misbehaving networks and servers (reference PDSes behind a fault-injecting
 * proxy): it must still complete and verify. And a blob the old server lost must be reported by
 * CID with the record that needs it, with no identity change and no claim of success.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirectoryBackup, verifyBackup } from '../src/backup.node.ts';
import { type MigrationEnvironment, migrate } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { MemoryStorage } from '../src/storage.ts';
import { until } from '../../../test/support/until.ts';
import { startFaultProxy } from './helpers/fault-proxy.ts';
import {
  type Account,
  checkMigrated,
  createAccount,
  type Network,
  plcToken,
  snapshot,
  startNetwork,
} from './helpers/network.ts';

let net: Network;
before(async () => {
  net = await startNetwork(2);
});
after(() => net.close());

function credentials(password: string, token: () => Promise<string | undefined>) {
  return {
    oldPassword: async () => password,
    newPassword: async () => password,
    authFactorToken: async () => undefined,
    plcToken: async (requested: boolean) => (requested ? token() : undefined),
  };
}

/** Migrates `acct` from the first PDS to the second, straight; `env` adds to or replaces the defaults. */
function migrateAcross(acct: Account, env: Partial<MigrationEnvironment> = {}) {
  const [a, b] = net.pdses;
  return migrate(
    { from: acct.did, fromPds: a!.url, to: b!.url, plcUrl: net.plc.url },
    {
      storage: new MemoryStorage(),
      credentials: credentials(acct.password, () => plcToken(a!, acct.did)),
      onEvent: () => {},
      ...env,
    },
  );
}

describe('migration through faults', () => {
  it('completes and verifies through 500s, resets, 429s with RateLimit-Reset and a blob cut mid-body', async () => {
    const [a, b] = net.pdses;
    const hana = await createAccount(a!, 'hana', { records: 400, blobs: 16, blobSize: 120_000 });
    const before = await snapshot(a!, hana);
    const plan = { error500: 0.04, reset: 0.03, rateLimited: 0.03, cutBlobBodies: 2 };
    const oldProxy = await startFaultProxy(a!.url, { seed: 7, ...plan });
    const newProxy = await startFaultProxy(b!.url, { seed: 11, ...plan, cutBlobBodies: 0 });
    const events: MigrationEvent[] = [];
    const backupDir = mkdtempSync(join(net.dir, 'backup-'));
    try {
      const result = await migrate(
        { from: hana.did, fromPds: oldProxy.url, to: newProxy.url, plcUrl: net.plc.url, concurrency: 6 },
        {
          storage: new MemoryStorage(),
          credentials: credentials(hana.password, () => plcToken(a!, hana.did)),
          onEvent: (e) => events.push(e),
          openBackup: (did) => new DirectoryBackup(backupDir, did).open(),
        },
      );
      assert.equal(result.status, 'done', result.message);
    } finally {
      await oldProxy.close();
      await newProxy.close();
    }
    const stats = [oldProxy.stats, newProxy.stats];
    const total = (k: 'error500' | 'reset' | 'rateLimited' | 'cut') => stats.reduce((n, s) => n + s[k], 0);
    assert.ok(total('error500') > 0, 'some 500s were injected');
    assert.ok(total('reset') > 0, 'some resets were injected');
    assert.ok(total('rateLimited') > 0, 'some 429s were injected');
    assert.equal(oldProxy.stats.cut, 2, 'two blob downloads were cut mid-body');
    await checkMigrated(net, a!, b!, hana, before);
    const backup = await verifyBackup(backupDir);
    assert.equal(backup.blobs, hana.blobCids.length);
  });

  it('signs in to the new server only once it holds the account', async () => {
    const [, b] = net.pdses;
    const mira = await createAccount(net.pdses[0]!, 'mira', { records: 3, blobs: 1 });
    const recording = () => {
      const sent: string[] = [];
      const fetchImpl: typeof fetch = (input, init) => {
        sent.push(new URL(input instanceof Request ? input.url : String(input)).toString());
        return fetch(input, init);
      };
      const signInsToNew = () => sent.filter((u) => u.startsWith(`${b!.url}/xrpc/com.atproto.server.createSession`));
      return { fetchImpl, sent, signInsToNew };
    };
    // A server that has never seen the DID says so publicly: no sign-in is tried there (it could
    // only fail, costing the server a password hash and the account a try of its rate limit).
    const first = recording();
    const moved = await migrateAcross(mira, { fetch: first.fetchImpl });
    assert.equal(moved.status, 'done', moved.message);
    assert.ok(first.sent.some((u) => u.startsWith(`${b!.url}/xrpc/com.atproto.sync.getRepoStatus`)));
    assert.deepEqual(first.signInsToNew(), []);
    // A run that finds the account there (an earlier run made it) signs in to carry on with it.
    const again = recording();
    const rerun = await migrateAcross(mira, { fetch: again.fetchImpl });
    assert.equal(rerun.status, 'done', rerun.message);
    assert.equal(again.signInsToNew().length, 1);
  });

  it('copies a record written on the old server after its export, in another round', async () => {
    const [a, b] = net.pdses;
    const noa = await createAccount(a!, 'noa', { records: 5, blobs: 1 });
    const before = await snapshot(a!, noa);
    const backupDir = mkdtempSync(join(net.dir, 'backup-'));
    let late: { uri: string; cid: string } | undefined;
    const warnings: string[] = [];
    const result = await migrateAcross(noa, {
      // The export is in the backup by the time the import starts; the owner posts just then.
      fetch: async (input, init) => {
        if (!late && String(input).includes('/xrpc/com.atproto.repo.importRepo')) {
          const written = await noa.agent.com.atproto.repo.createRecord({
            repo: noa.did,
            collection: 'com.example.item',
            record: { $type: 'com.example.item', text: 'written during the move' },
          });
          late = written.data;
        }
        return fetch(input, init);
      },
      onEvent: (e) => {
        if (e.type === 'warning') warnings.push(e.message);
      },
      openBackup: (did) => new DirectoryBackup(backupDir, did).open(),
    });
    assert.equal(result.status, 'done', result.message);
    assert.ok(late, 'the record was written mid-move');
    assert.ok(
      warnings.some((w) => /changed.*copying the changes/.test(w)),
      `a second round copied the change: ${warnings.join(' | ')}`,
    );
    const records = new Map(before.records).set(`com.example.item/${late.uri.split('/').at(-1)}`, late.cid);
    await checkMigrated(net, a!, b!, noa, { ...before, records });
  });

  it('stops having PLC tokens emailed after three are refused, with the identity unmoved', async () => {
    const pia = await createAccount(net.pdses[0]!, 'pia', { records: 2, blobs: 0 });
    let asked = 0;
    const result = await migrateAcross(pia, {
      credentials: credentials(pia.password, async () => {
        asked++;
        return 'WRONG-CODE1';
      }),
    });
    assert.equal(result.status, 'failed');
    assert.match(result.message, /refused 3 PLC tokens/);
    assert.equal(asked, 3);
    const status = await pia.agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.activated, true, 'the old account is untouched');
  });

  it('fills the backup before the blob phase, uploads from it, and refetches a stored copy that proves damaged', async () => {
    const [a, b] = net.pdses;
    const mia = await createAccount(a!, 'mia', { records: 50, blobs: 6, blobSize: 50_000 });
    const before = await snapshot(a!, mia);
    const backupDir = mkdtempSync(join(net.dir, 'backup-'));
    const storedBlobs = () => readdirSync(join(backupDir, 'blobs')).filter((n) => !n.startsWith('.'));
    const damaged = mia.blobCids[2]!;
    let step = '';
    const downloads: { cid: string; step: string }[] = [];
    const calls: string[] = [];
    let repoEncoding: string | null | undefined;
    const watchingFetch: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      calls.push(url.pathname.replace('/xrpc/', ''));
      if (url.pathname.endsWith('/com.atproto.sync.getBlob')) {
        downloads.push({ cid: url.searchParams.get('cid')!, step });
      }
      if (url.pathname.endsWith('/com.atproto.repo.importRepo')) {
        // The import waits until the backup holds every blob; then one stored copy gets damaged.
        await until(
          'the backup to hold every blob during the import',
          async () => (storedBlobs().length >= mia.blobCids.length ? true : undefined),
          { everyMs: 20 },
        );
        writeFileSync(join(backupDir, 'blobs', damaged), randomBytes(50_000));
      }
      const res = await fetch(input, init);
      if (url.pathname.endsWith('/com.atproto.sync.getRepo')) repoEncoding = res.headers.get('content-encoding');
      return res;
    };
    const result = await migrateAcross(mia, {
      fetch: watchingFetch,
      onEvent: (e) => {
        if (e.type === 'step-started') step = e.step;
      },
      openBackup: (did) => new DirectoryBackup(backupDir, did).open(),
    });
    assert.equal(result.status, 'done', result.message);
    await checkMigrated(net, a!, b!, mia, before);
    assert.equal(calls.filter((c) => c === 'com.atproto.sync.getRepo').length, 1, 'the repo was downloaded once');
    assert.equal(repoEncoding, null, 'the export came uncompressed (the reference gzips CARs unless told not to)');
    assert.ok(
      calls.indexOf('com.atproto.sync.getRepo') < calls.indexOf('com.atproto.server.createAccount'),
      'the repo download began before the new account existed (it is imported from the backup)',
    );
    const blobPhase = ['blobs', 'preferences', 'backup', 'verify'];
    assert.deepEqual(
      downloads
        .filter((d) => !blobPhase.includes(d.step))
        .map((d) => d.cid)
        .sort(),
      [...mia.blobCids].sort(),
      'each blob was downloaded once, before the blob phase (while the account was set up and the repo imported)',
    );
    assert.deepEqual(
      downloads.filter((d) => blobPhase.includes(d.step)),
      [{ cid: damaged, step: 'blobs' }],
      'only the damaged copy was fetched again',
    );
    for (const cid of mia.blobCids) {
      const res = await fetch(`${b!.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: mia.did, cid })}`);
      assert.equal(res.headers.get('content-type'), 'image/jpeg', 'uploaded with the content type the old server gave');
      await res.arrayBuffer();
    }
    const backup = await verifyBackup(backupDir);
    assert.equal(backup.blobs, mia.blobCids.length, 'the damaged copy was replaced');
  });

  it('reports a blob the old server no longer has, with its record, and does not move the identity', async () => {
    const [a] = net.pdses;
    const ivan = await createAccount(a!, 'ivan', { records: 10, blobs: 3 });
    const lost = ivan.blobCids[1]!;
    await a!.ctx.blobstore(ivan.did).delete({ toString: () => lost } as never);
    const events: MigrationEvent[] = [];
    let tokenAsked = false;
    const result = await migrateAcross(ivan, {
      credentials: credentials(ivan.password, async () => {
        tokenAsked = true;
        return plcToken(a!, ivan.did);
      }),
      onEvent: (e) => events.push(e),
    });
    assert.equal(result.status, 'failed');
    assert.equal(result.missingBlobs?.length, 1);
    const missing = result.missingBlobs![0]!;
    assert.equal(missing.cid, lost);
    assert.match(missing.record ?? '', new RegExp(`^at://${ivan.did}/com\\.example\\.file/`));
    assert.match(missing.reason, /no longer has this blob/);
    assert.match(result.message, new RegExp(lost));
    assert.ok(!tokenAsked, 'the PLC token was never requested');
    const finished = events.find((e) => e.type === 'finished');
    assert.ok(finished && finished.type === 'finished' && finished.status === 'failed');
    assert.ok(!events.some((e) => e.type === 'step-started' && e.step === 'identity'));
    const doc = (await (await fetch(`${net.plc.url}/${ivan.did}`)).json()) as {
      service: { serviceEndpoint: string }[];
    };
    assert.equal(doc.service[0]!.serviceEndpoint, a!.url);
    const status = await ivan.agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.activated, true, 'the old account is untouched');
  });

  it('asks for the emailed sign-in code when the old server wants one (AuthFactorTokenRequired)', async () => {
    const [a] = net.pdses;
    const lena = await createAccount(a!, 'lena', { records: 2, blobs: 0 });
    // In front of the old server: createSession needs authFactorToken "CODE-1234", as Bluesky's entryway does.
    const target = new URL(a!.url);
    const gate = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url?.startsWith('/xrpc/com.atproto.server.createSession')) {
          const input = JSON.parse(body.toString()) as { authFactorToken?: string };
          if (input.authFactorToken !== 'CODE-1234') {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({
                error: 'AuthFactorTokenRequired',
                message: 'A sign in code has been sent to your email address',
              }),
            );
            return;
          }
        }
        const up = request(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: target.host },
          },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        up.end(body);
      });
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    const gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}`;
    try {
      const run = (code: string | undefined) => {
        const events: MigrationEvent[] = [];
        let asked = 0;
        return migrate(
          // The target is not a PDS, so a run that got past the login stops right after it.
          { from: lena.did, fromPds: gateUrl, to: `${gateUrl}/not-a-pds`, plcUrl: net.plc.url },
          {
            storage: new MemoryStorage(),
            credentials: {
              ...credentials(lena.password, async () => undefined),
              authFactorToken: async () => {
                asked++;
                return code;
              },
            },
            onEvent: (e) => events.push(e),
          },
        ).then((result) => ({ result, events, asked }));
      };
      const without = await run(undefined);
      assert.equal(without.result.status, 'failed');
      assert.equal(without.asked, 1);
      const failed = without.events.find((e) => e.type === 'step-failed');
      assert.ok(failed && failed.type === 'step-failed' && failed.step === 'login-old');
      assert.deepEqual(failed.nextStep, {
        kind: 'need-sign-in-code',
        server: 'old',
        reason: 'emailed',
        nothingChanged: true,
      });
      assert.doesNotMatch(failed.next, /--/, 'the engine names no flag');

      const withCode = await run('CODE-1234');
      assert.equal(withCode.asked, 1);
      assert.ok(withCode.events.some((e) => e.type === 'step-done' && e.step === 'login-old'));
      const stopped = withCode.events.find((e) => e.type === 'step-failed');
      assert.ok(stopped && stopped.type === 'step-failed' && stopped.step === 'inspect-new');
    } finally {
      await new Promise<void>((r) => gate.close(() => r()));
    }
  });

  // A run stopped (killed, or its connection lost) after sending createAccount leaves that request
  // to finish on the new server while the next run is already going. Both orders must still end
  // in a migrated account, since the account was made with this run's password.
  for (const landing of ['between the sign-in check and the handle check', 'just before its own createAccount']) {
    it(`goes on when a stopped run's createAccount lands ${landing}`, async () => {
      const [a, b] = net.pdses;
      const name = landing.startsWith('between') ? 'nora' : 'otto';
      const acct = await createAccount(a!, name, { records: 20, blobs: 2 });
      const before = await snapshot(a!, acct);
      const newServiceDid = (
        (await (await fetch(`${b!.url}/xrpc/com.atproto.server.describeServer`)).json()) as {
          did: string;
        }
      ).did;
      // What the stopped run had sent: createAccount with a service token from the old server.
      const landStoppedRunsCreateAccount = async () => {
        const { data } = await acct.agent.com.atproto.server.getServiceAuth({
          aud: newServiceDid,
          lxm: 'com.atproto.server.createAccount',
        });
        const res = await fetch(`${b!.url}/xrpc/com.atproto.server.createAccount`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${data.token}` },
          body: JSON.stringify({
            did: acct.did,
            handle: acct.handle,
            email: `${name}@example.com`,
            password: acct.password,
          }),
        });
        assert.equal(res.status, 200, await res.text());
      };
      let landed = false;
      let refusedAsDuplicate = false;
      const interleaving: typeof fetch = async (input, init) => {
        const url = new URL(String(input));
        const onNew = url.origin === new URL(b!.url).origin;
        const trigger = landing.startsWith('between')
          ? 'com.atproto.identity.resolveHandle'
          : 'com.atproto.server.createAccount';
        if (onNew && !landed && url.pathname.endsWith(trigger)) {
          landed = true;
          await landStoppedRunsCreateAccount();
        }
        const res = await fetch(input, init);
        if (onNew && url.pathname.endsWith('com.atproto.server.createAccount')) refusedAsDuplicate = !res.ok;
        return res;
      };
      const result = await migrateAcross(acct, { fetch: interleaving });
      assert.ok(landed, "the stopped run's request landed");
      if (!landing.startsWith('between')) assert.ok(refusedAsDuplicate, "this run's own createAccount was refused");
      assert.equal(result.status, 'done', result.message);
      await checkMigrated(net, a!, b!, acct, before);
    });
  }
});
