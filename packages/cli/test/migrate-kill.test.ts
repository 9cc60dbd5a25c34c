/**
 * Crash safety of `portage migrate`: the CLI is SIGKILLed at random moments across all steps
 * (a random number of JSON events into the run, plus a random delay), then run again until done.
 * Every account must end in the same verified state: same records, every blob exactly once,
 * equal preferences, the DID on the new server, new active, old deactivated, backup valid.
 *
 * PORTAGE_MIGRATE_KILLS sets how many kills in total (default 20; each costs about a second on
 * 2 cores; accounts are added until that many kills landed). PORTAGE_MIGRATE_KILL_SEED replays a sequence.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyBackup } from '@portage/migrate/backup.node';
import {
  accountPasswordEnv,
  checkMigrated,
  createAccount,
  migrateCliArgs,
  type Network,
  plcToken,
  runAndKill,
  snapshot,
  startNetwork,
} from '../../migrate/test/helpers/network.ts';

const KILLS = Number(process.env.PORTAGE_MIGRATE_KILLS ?? 20);
const MAX_ACCOUNTS = 12;
const firstSeed = Number(process.env.PORTAGE_MIGRATE_KILL_SEED ?? Date.now() % 100000);
let seed = firstSeed;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

let net: Network;
before(async () => {
  net = await startNetwork(2);
});
after(() => net.close());

describe(`portage migrate killed ${KILLS} times`, () => {
  it(`always ends in the same verified state (seed ${firstSeed})`, { timeout: 300_000 }, async () => {
    const [a, b] = net.pdses;
    const killedAt: string[] = [];
    // Each account is killed again and again until a run gets through on its own; then it is
    // checked and the next account starts, until enough kills have landed.
    for (let i = 0; killedAt.length < KILLS && i < MAX_ACCOUNTS; i++) {
      const account = await createAccount(a!, `kill${i}`, { records: 400, blobs: 24, blobSize: 80_000 });
      const before = await snapshot(a!, account);
      const dir = join(net.dir, `kill-${i}`);
      const args = () =>
        migrateCliArgs(
          {
            from: account.did,
            fromPds: a!.url,
            to: b!.url,
            plcUrl: net.plc.url,
            stateDir: join(dir, 'state'),
            backupDir: join(dir, 'backup'),
          },
          ['--concurrency', '4'],
        );
      const env = accountPasswordEnv(account);
      // The token the old server emailed, if one is outstanding (a killed sign may have used it up).
      const withToken = async () => {
        const token = await plcToken(a!, account.did);
        return token ? [...args(), '--plc-token', token] : args();
      };
      let done = false;
      for (let runs = 0; !done && runs < 40; runs++) {
        const kill = killedAt.length < KILLS;
        const run = kill
          ? await runAndKill(await withToken(), env, 1 + Math.floor(random() * 14), Math.floor(random() * 500))
          : await runAndKill(await withToken(), env, Number.POSITIVE_INFINITY, 0);
        if (run.killed) killedAt.push(run.lastStep ?? 'startup');
        else {
          assert.ok(
            run.code === 0 || run.code === 3,
            `exit ${run.code} (1 would mean a failure) after kills at ${killedAt.join(', ')}; seed ${firstSeed}; stderr:\n${run.stderr}`,
          );
          done = run.code === 0;
        }
      }
      assert.ok(done, 'the migration finishes after the kills');
      await checkMigrated(net, a!, b!, account, before);
      // Every blob exactly once on the new server.
      const listed = (await (
        await fetch(`${b!.url}/xrpc/com.atproto.sync.listBlobs?did=${account.did}&limit=1000`)
      ).json()) as { cids: string[] };
      assert.deepEqual([...listed.cids].sort(), [...account.blobCids].sort());
      const backup = await verifyBackup(join(dir, 'backup'));
      assert.equal(backup.blobs, account.blobCids.length);
    }
    // Which step each kill interrupted (for the log; the spread depends on the random draws).
    const spread: Record<string, number> = {};
    for (const step of killedAt) spread[step] = (spread[step] ?? 0) + 1;
    process.stdout.write(`# kills: ${killedAt.length}, by step: ${JSON.stringify(spread)}, seed ${firstSeed}\n`);
    assert.ok(killedAt.length >= KILLS, `${killedAt.length} kills landed`);
  });
});
