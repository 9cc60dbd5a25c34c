/**
 * Durability: the PDS runs in a child process and is killed with SIGKILL in the middle of a
 * stream of writes. After a restart on the same data directory every write that was
 * acknowledged is there, the repository verifies with the reference, and the records index
 * agrees with the repository (nothing half-written is visible).
 *
 * This file is also the child: with PORTAGE_CRASH_CHILD set it only starts a PDS and prints
 * its URL.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { loadConfig } from '../src/config.ts';
import { startPds } from '../src/index.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';

async function runChild(): Promise<void> {
  const config = loadConfig({
    PDS_HOSTNAME: 'localhost',
    PDS_PORT: '0',
    PDS_DATA_DIRECTORY: process.env.PORTAGE_CRASH_DATA as string,
    PDS_SERVICE_DID: 'did:web:localhost',
    PDS_SERVICE_HANDLE_DOMAINS: '.test',
    PDS_INVITE_REQUIRED: 'false',
    PDS_DEV_MODE: 'true',
    PDS_DID_PLC_URL: process.env.PORTAGE_CRASH_PLC as string,
    LOG_LEVEL: 'silent',
  });
  const pds = await startPds(config, { host: '127.0.0.1' });
  process.stdout.write(`${JSON.stringify({ url: pds.localUrl })}\n`);
}

function startChild(dataDir: string, plcUrl: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [import.meta.filename], {
    env: { ...process.env, PORTAGE_CRASH_CHILD: '1', PORTAGE_CRASH_DATA: dataDir, PORTAGE_CRASH_PLC: plcUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve({ child, url: (JSON.parse(line as string) as { url: string }).url });
    });
    child.on('exit', (code) => reject(new Error(`child PDS exited early (${code})`)));
  });
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

if (process.env.PORTAGE_CRASH_CHILD) {
  await runChild();
} else {
  describe('kill -9 during a stream of writes', () => {
    let dir: string;
    let plc: RunningPlcDirectory;
    let child: ChildProcess | undefined;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'portage-repo-crash-'));
      plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dir, 'plc') });
    });
    after(async () => {
      if (child && child.exitCode === null && child.signalCode === null) await killHard(child);
      await plc?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('keeps every acknowledged write and a verifiable repository', async () => {
      const dataDir = join(dir, 'pds');
      const first = await startChild(dataDir, plc.url);
      child = first.child;
      const agent = new AtpAgent({ service: first.url });
      await agent.createAccount({ handle: 'crash.test', email: 'crash@example.com', password: 'crash test password' });
      const did = agent.session!.did;

      const acknowledged = new Map<string, string>();
      let stop = false;
      let killed = false;
      const writer = async (id: number) => {
        for (let i = 0; !stop; i++) {
          try {
            const res = await agent.com.atproto.repo.applyWrites({
              repo: did,
              writes: Array.from({ length: 1 + (i % 5) }, (_, j) => ({
                $type: 'com.atproto.repo.applyWrites#create' as const,
                collection: 'app.bsky.feed.post',
                value: {
                  $type: 'app.bsky.feed.post',
                  text: `writer ${id} batch ${i} #${j}`,
                  createdAt: new Date().toISOString(),
                },
              })),
            });
            for (const r of res.data.results ?? []) {
              const { uri, cid } = r as { uri: string; cid: string };
              acknowledged.set(uri, cid);
            }
          } catch (err) {
            if (!killed) throw err;
            return; // the server died under us: this write was never acknowledged
          }
        }
      };
      const writers = [writer(1), writer(2), writer(3), writer(4)];
      while (acknowledged.size < 300) await new Promise((r) => setTimeout(r, 5));
      killed = true;
      await killHard(child);
      stop = true;
      await Promise.all(writers);

      const second = await startChild(dataDir, plc.url);
      child = second.child;
      const reader = new AtpAgent({ service: second.url });
      const records = new Map<string, string>();
      let cursor: string | undefined;
      do {
        const { data } = await reader.com.atproto.repo.listRecords({
          repo: did,
          collection: 'app.bsky.feed.post',
          limit: 100,
          cursor,
        });
        for (const r of data.records) records.set(r.uri, r.cid);
        cursor = data.cursor;
      } while (cursor);
      for (const [uri, cid] of acknowledged) assert.equal(records.get(uri), cid, `acknowledged ${uri} survived`);

      const doc = (await (await fetch(`${plc.url}/${did}`)).json()) as {
        verificationMethod: { publicKeyMultibase: string }[];
      };
      const key = `did:key:${doc.verificationMethod[0]!.publicKeyMultibase}`;
      const car = (await reader.com.atproto.sync.getRepo({ did })).data;
      const verified = await verifyRepoCar(car, did, key);
      const inRepo = new Map(verified.creates.map((w) => [`at://${did}/${w.collection}/${w.rkey}`, w.cid.toString()]));
      assert.deepEqual(inRepo, records, 'the records index and the repository agree');

      // The restarted server keeps writing on top of the recovered state.
      await reader.login({ identifier: 'crash.test', password: 'crash test password' });
      await reader.post({ text: 'after the crash', createdAt: new Date().toISOString() });
      await killHard(child);
    });
  });
}
