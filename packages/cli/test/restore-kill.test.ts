/**
 * Crash safety of `portage restore`: the CLI is SIGKILLed at random moments across all steps (a
 * random number of JSON events into the run, plus a random delay), then run again until it
 * finishes. Every account must end in the same verified state: the backup's records and blobs
 * (each blob once), its preferences, the DID on Portage with the recovery key first, active.
 *
 * PORTAGE_RESTORE_KILLS sets how many kills in total (default 10); PORTAGE_RESTORE_KILL_SEED
 * replays a sequence.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { repoRecords, runAndKill } from '../../migrate/test/helpers/network.ts';
import {
  type BackedUpAccount,
  backedUpAccount,
  type RestoreNetwork,
  restoreArgs,
  startRestoreNetwork,
} from './restore-network.ts';

const KILLS = Number(process.env.PORTAGE_RESTORE_KILLS ?? 10);
/**
 * The kills are spread over all but the last four accounts; those are spares that take the kills
 * that missed (a resumed run has less left to do, so it may finish before its kill comes).
 */
const ACCOUNTS = 8;
const SPARES = 4;
const firstSeed = Number(process.env.PORTAGE_RESTORE_KILL_SEED ?? Date.now() % 100000);
let seed = firstSeed;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

let net: RestoreNetwork;
let dir: string;
const accounts: BackedUpAccount[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-restore-kill-'));
  net = await startRestoreNetwork(dir);
  const made = Array.from({ length: ACCOUNTS }, (_, i) =>
    backedUpAccount(net, `crash${i}`, { records: 120, blobs: 8, blobSize: 40_000 }),
  );
  accounts.push(...(await Promise.all(made)));
  await net.stopOld();
});

after(async () => {
  await net?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe(`portage restore killed ${KILLS} times`, () => {
  it(`always ends in the same verified state (seed ${firstSeed})`, { timeout: 240_000 }, async () => {
    const killedAt: string[] = [];
    for (const [i, account] of accounts.entries()) {
      const args = restoreArgs(net, account, join(dir, `state-${i}`), ['--concurrency', '4']);
      const env = { PORTAGE_NEW_PASSWORD: account.password };
      // Kills spread over the accounts; the last run of each goes through on its own.
      const target = Math.min(KILLS, Math.ceil((KILLS * (i + 1)) / (ACCOUNTS - SPARES)));
      let done = false;
      for (let runs = 0; !done && runs < 30; runs++) {
        const kill = killedAt.length < target;
        const run = kill
          ? await runAndKill(args, env, 1 + Math.floor(random() * 10), Math.floor(random() * 150))
          : await runAndKill(args, env, Number.POSITIVE_INFINITY, 0);
        if (run.killed) killedAt.push(run.lastStep ?? 'startup');
        else {
          assert.equal(
            run.code,
            0,
            `exit ${run.code} after kills at ${killedAt.join(', ')}; seed ${firstSeed}; stderr:\n${run.stderr}`,
          );
          done = true;
        }
      }
      assert.ok(done, 'the restore finishes after the kills');
      await checkRestored(account);
    }
    const spread: Record<string, number> = {};
    for (const step of killedAt) spread[step] = (spread[step] ?? 0) + 1;
    process.stdout.write(`# kills: ${killedAt.length}, by step: ${JSON.stringify(spread)}, seed ${firstSeed}\n`);
    assert.ok(killedAt.length >= KILLS, `${killedAt.length} kills landed`);
  });
});

async function checkRestored(account: BackedUpAccount): Promise<void> {
  const url = net.portage.url;
  assert.deepEqual([...(await repoRecords(url, account.did))].sort(), [...account.records].sort());
  const listed = (await (
    await fetch(`${url}/xrpc/com.atproto.sync.listBlobs?did=${account.did}&limit=1000`)
  ).json()) as { cids: string[] };
  assert.deepEqual([...listed.cids].sort(), [...account.blobCids].sort(), 'every blob exactly once');
  const doc = (await (await fetch(`${net.plc.url}/${account.did}/data`)).json()) as {
    rotationKeys: string[];
    services: { atproto_pds: { endpoint: string } };
  };
  assert.equal(doc.services.atproto_pds.endpoint, net.portage.publicUrl);
  assert.equal(doc.rotationKeys[0], account.keyDid);
  const agent = new AtpAgent({ service: url });
  await agent.login({ identifier: account.did, password: account.password });
  assert.equal((await agent.com.atproto.server.checkAccountStatus()).data.activated, true);
  assert.deepEqual((await agent.app.bsky.actor.getPreferences()).data.preferences, account.preferences);
}
