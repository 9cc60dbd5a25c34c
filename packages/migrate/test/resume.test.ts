/**
 * A migration killed after the blob prefetch and started again, between two Portage PDSes that
 * share one PLC directory. The first run is the real CLI in a child process, killed with SIGKILL
 * while the new server's importRepo is held back by a proxy: by then the prefetch has stored every
 * blob in the backup and nothing has been uploaded. The second run must upload those blobs from
 * the backup without downloading them from the old server again, with the content types they
 * came with, and must not trust a stored copy whose bytes were cut short.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { outboxToken, startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { DirectoryBackup, verifyBackup } from '../src/backup.node.ts';
import { migrate } from '../src/engine.ts';
import { sleep } from '../src/retry.ts';
import { DirectoryStorage } from '../src/storage.node.ts';
import { forward, listenOnLoopback } from './helpers/fault-proxy.ts';
import { accountPasswordEnv, createAccount, migrateCliArgs, spawnCli } from './helpers/network.ts';

let oldPds: TestPds;
let newPds: TestPds;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-migrate-resume-'));
  oldPds = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:portage-old.test' } });
  newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:portage-new.test' } });
});

after(async () => {
  await newPds?.close().catch(() => {});
  await oldPds?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A proxy to `target` that leaves importRepo requests unanswered while `holdImports` is set. */
async function startImportHoldingProxy(target: string) {
  const to = new URL(target);
  const state = { holdImports: true, importsHeld: 0 };
  const server = createServer((req, res) => {
    if (state.holdImports && req.url?.startsWith('/xrpc/com.atproto.repo.importRepo')) {
      state.importsHeld++;
      req.resume();
      return;
    }
    forward(to, req, res);
  });
  return { ...(await listenOnLoopback(server)), state };
}

/** Waits until `ready` holds, failing early when the child process ended on its own. */
async function waitFor(child: ChildProcess, output: () => string, ready: () => Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await ready()); waited += 50) {
    if (child.exitCode !== null) throw new Error(`the first run ended by itself (exit ${child.exitCode}): ${output()}`);
    if (waited > 60_000) throw new Error(`the first run did not get there: ${output()}`);
    await sleep(50);
  }
}

describe('a migration killed after the blob prefetch', () => {
  it('uploads the blobs the killed run stored from the backup, without downloading them again', async () => {
    const nora = await createAccount(oldPds, 'nora', {
      records: 30,
      blobs: 6,
      blobSize: 40_000,
    });
    const stateDir = join(dir, 'state');
    const backupDir = join(dir, 'backup');
    const proxy = await startImportHoldingProxy(newPds.url);
    try {
      const child = spawnCli(
        migrateCliArgs({
          from: nora.did,
          fromPds: oldPds.url,
          to: proxy.url,
          plcUrl: oldPds.plcUrl,
          stateDir,
          backupDir,
        }),
        accountPasswordEnv(nora),
      );
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
      const exited = new Promise((r) => child.on('close', r));
      // Stored and recorded with its type: what a later run reads (a fresh instance, as it would).
      const prefetched = async () => {
        const backup = new DirectoryBackup(backupDir, nora.did);
        for (const cid of nora.blobCids) {
          if (!(await backup.hasBlob(cid).catch(() => false))) return false;
          if ((await backup.blobContentType(cid)) !== 'image/jpeg') return false;
        }
        return true;
      };
      await waitFor(
        child,
        () => output,
        async () => proxy.state.importsHeld > 0 && (await prefetched()),
      );
      child.kill('SIGKILL');
      await exited;
      assert.ok(
        newPds.ctx.accountManager.getAccount(nora.did),
        'the first run created the account before it was killed',
      );

      // A stored copy cut short (as a crash of a careless writer would leave it) must not be sent.
      const cut = nora.blobCids[3]!;
      const cutPath = join(backupDir, 'blobs', cut);
      writeFileSync(cutPath, readFileSync(cutPath).subarray(0, 10_000));

      proxy.state.holdImports = false;
      const downloads: string[] = [];
      let uploads = 0;
      const countingFetch: typeof fetch = async (input, init) => {
        const url = new URL(String(input));
        if (url.pathname.endsWith('/com.atproto.sync.getBlob')) downloads.push(url.searchParams.get('cid')!);
        if (url.pathname.endsWith('/com.atproto.repo.uploadBlob')) uploads++;
        return fetch(input, init);
      };
      const result = await migrate(
        { from: nora.did, fromPds: oldPds.url, to: proxy.url, plcUrl: oldPds.plcUrl },
        {
          storage: new DirectoryStorage(stateDir),
          fetch: countingFetch,
          credentials: {
            oldPassword: async () => nora.password,
            newPassword: async () => nora.password,
            authFactorToken: async () => undefined,
            plcToken: async (requested) =>
              requested ? outboxToken(oldPds.ctx.mailer.outboxPath, 'nora@example.com') : undefined,
          },
          onEvent: () => {},
          openBackup: (did) => new DirectoryBackup(backupDir, did).open(),
        },
      );
      assert.equal(result.status, 'done', result.message);
      assert.deepEqual(downloads, [cut], 'only the copy cut short was downloaded again');
      assert.equal(uploads, nora.blobCids.length, 'one upload per blob: the cut copy was never sent');
    } finally {
      await proxy.close();
    }

    for (const cid of nora.blobCids) {
      const res = await fetch(
        `${newPds.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: nora.did, cid })}`,
      );
      assert.equal(res.status, 200, `blob ${cid} is on the new server`);
      assert.equal(res.headers.get('content-type'), 'image/jpeg', 'uploaded with the type the old server sent');
      assert.equal(formatCid(cidForRaw(new Uint8Array(await res.arrayBuffer()))), cid, 'with the right bytes');
    }
    const backup = await verifyBackup(backupDir);
    assert.equal(backup.blobs, nora.blobCids.length, 'the cut copy was replaced in the backup');
  });
});
