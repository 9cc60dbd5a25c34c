// Account changes and their firehose events land together or not at all.
//
// In process: a failure inside the transaction, after the account change and its event were
// written, leaves neither. Under SIGKILL: a child process signs accounts up, changes handles,
// deactivates and activates them through the real AccountManager wired to the real sequencer
// (as the app context wires them), and is killed mid-stream, three times. After recovery every
// account's row is exactly the state its events describe, no event exists for a change that
// did not commit, seqs are contiguous, and a seq announced before a kill still names the same
// event (never reused).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type AccountEventLog, AccountManager } from '../src/account/account-manager.ts';
import { jwtKeyFromSecret, TokenIssuer } from '../src/auth/tokens.ts';
import { FirehoseService } from '../src/sequencer/firehose-service.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { outboxSize } from '../src/sequencer/outbox.ts';
import { runChildAndKill } from './crash-child.ts';

/** Handle changes, deactivations and activations after each sign-up (several hundred events per account). */
const CYCLES_PER_ACCOUNT = 60;

function openManager(dir: string): { accounts: AccountManager; service: FirehoseService } {
  const accounts = new AccountManager({
    dbPath: join(dir, 'account.sqlite'),
    tokens: new TokenIssuer(jwtKeyFromSecret('account-events-crash-test'), 'did:web:localhost'),
    hostname: 'localhost',
  });
  // As the app context does: the firehose recovers the account outbox at start-up, then the
  // account manager writes its events there.
  const service = new FirehoseService({
    dataDirectory: dir,
    hostname: 'localhost',
    crawlers: [],
    accountDb: accounts.db,
  });
  accounts.sequenceEventsThrough(service.sequencer, service.accountHost(accounts.db));
  return { accounts, service };
}

interface AccountState {
  handle: string;
  active: boolean;
}

/** One announced event, reduced to what identifies it. */
function eventKey(frame: Uint8Array): string {
  const { t, body } = decodeFrame(frame);
  if (t === '#identity') return `identity ${String(body.did)} ${String(body.handle)}`;
  if (t === '#account') return `account ${String(body.did)} ${String(body.active)} ${String(body.status ?? '')}`;
  return `${String(t)} ${String(body.did ?? body.repo)}`;
}

/**
 * The operations the child applies to account `did`, in order, each with the events it must
 * announce and the state it leaves: sign-up, then cycles of handle change, deactivation and
 * activation.
 */
function* accountScript(did: string, prefix: string) {
  const firstHandle = `${prefix}-0.test`;
  let state: AccountState = { handle: firstHandle, active: true };
  yield {
    apply: (m: AccountManager) =>
      m.createAccount({ did, handle: firstHandle, email: null, password: 'account-events-crash' }),
    events: [`identity ${did} ${firstHandle}`, `account ${did} true `],
    state,
  };
  for (let cycle = 1; cycle <= CYCLES_PER_ACCOUNT; cycle++) {
    const handle = `${prefix}-${cycle}.test`;
    state = { handle, active: true };
    yield { apply: (m: AccountManager) => m.updateHandle(did, handle), events: [`identity ${did} ${handle}`], state };
    state = { handle, active: false };
    yield {
      apply: (m: AccountManager) => m.deactivateAccount(did, null),
      events: [`account ${did} false deactivated`],
      state,
    };
    state = { handle, active: true };
    yield {
      apply: (m: AccountManager) => m.activateAccount(did),
      events: [`identity ${did} ${handle}`, `account ${did} true `],
      state,
    };
  }
}

function didOf(run: number, n: number): string {
  return `did:plc:crashrun${run}account${n}`;
}

/** Runs the script for accounts 0, 1, 2... printing `SEQ <seq> <event>` as events are announced. */
async function child(dir: string, run: number): Promise<void> {
  const { accounts, service } = openManager(dir);
  service.sequencer.onEvent((event) => process.stdout.write(`SEQ ${event.seq} ${eventKey(event.frame)}\n`));
  for (let n = 0; ; n++) {
    let step = 0;
    for (const op of accountScript(didOf(run, n), `r${run}a${n}`)) {
      await op.apply(accounts);
      // Most steps run back to back, so committed events often wait in the outbox for the
      // scheduled flush when the kill lands.
      if (++step % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

if (process.argv[2] === '--crash-child') {
  await child(process.argv[3]!, Number(process.argv[4]));
} else {
  describe('account events are written with the account change', () => {
    test('a failure after the change, inside its transaction, leaves neither the change nor its event', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'portage-account-events-'));
      try {
        const { accounts, service } = openManager(dir);
        const did = 'did:plc:rollbackrollbackrollback';
        await accounts.createAccount({ did, handle: 'before.test', email: null, password: 'pw-rollback' });
        await new Promise((resolve) => setImmediate(resolve));
        const seqBefore = service.sequencer.lastSeq();
        assert.equal(seqBefore, 2, '#identity and #account of the sign-up');

        // The real sequencer writes the event into the outbox, then the process "fails"
        // before the transaction commits.
        const failing: AccountEventLog = {
          sequenceIdentity: (host, data) => {
            service.sequencer.sequenceIdentity(host, data);
            throw new Error('crash after the event was written');
          },
          sequenceAccount: (host, data) => {
            service.sequencer.sequenceAccount(host, data);
            throw new Error('crash after the event was written');
          },
          sequenceSync: (host, data) => service.sequencer.sequenceSync(host, data),
        };
        accounts.sequenceEventsThrough(failing, service.accountHost(accounts.db));
        assert.throws(() => accounts.updateHandle(did, 'after.test'), /crash after the event was written/);
        assert.throws(() => accounts.deactivateAccount(did, null), /crash after the event was written/);
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(accounts.getAccount(did)?.handle, 'before.test');
        assert.equal(accounts.getAccount(did)?.deactivatedAt, null);
        assert.equal(service.sequencer.lastSeq(), seqBefore, 'no event for the changes that rolled back');
        assert.equal(outboxSize(accounts.db), 0, 'nothing left in the outbox');

        // A handle taken by another account: the change fails, and no event goes out.
        accounts.sequenceEventsThrough(service.sequencer, service.accountHost(accounts.db));
        await accounts.createAccount({
          did: 'did:plc:otherotherotherother',
          handle: 'taken.test',
          email: null,
          password: 'pw',
        });
        await new Promise((resolve) => setImmediate(resolve));
        const seqTaken = service.sequencer.lastSeq();
        assert.throws(() => accounts.updateHandle(did, 'taken.test'), /Handle already taken/);
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(service.sequencer.lastSeq(), seqTaken);

        // Seqs continue after the rolled-back attempts: no gap, no reuse.
        accounts.updateHandle(did, 'after.test');
        await new Promise((resolve) => setImmediate(resolve));
        const last = service.sequencer.readAfter(seqTaken, 10);
        assert.deepEqual(
          last.map((e) => [e.seq, eventKey(e.frame)]),
          [[seqTaken + 1, `identity ${did} after.test`]],
        );
        service.close();
        accounts.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('SIGKILL mid-stream: every account matches its events, seqs contiguous and never reused', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'portage-account-events-crash-'));
      try {
        const announced = new Map<number, string>();
        let previousMax = 0;
        const runs = 3;
        for (let run = 0; run < runs; run++) {
          const seen = await runChildAndKill(import.meta.filename, [dir, String(run)], 400 + 150 * run);
          const seqs = [...seen.keys()];
          assert.ok(Math.min(...seqs) > previousMax, `run ${run}: new seqs start after every seq announced before`);
          previousMax = Math.max(...seqs);
          for (const [seq, key] of seen) announced.set(seq, key);
        }

        // Start-up after the last kill: recovery moves what the outbox still held into the log.
        const { accounts, service } = openManager(dir);
        const log = service.sequencer.readAfter(0, 1_000_000);
        assert.deepEqual(
          log.map((e) => e.seq),
          Array.from({ length: log.length }, (_, i) => i + 1),
          'seqs are contiguous from 1',
        );
        const keyBySeq = new Map(log.map((e) => [e.seq, eventKey(e.frame)]));
        for (const [seq, key] of announced) assert.equal(keyBySeq.get(seq), key, `seq ${seq} still names ${key}`);
        assert.equal(outboxSize(accounts.db), 0, 'recovery emptied the outbox');

        const eventsByDid = new Map<string, string[]>();
        for (const key of keyBySeq.values()) {
          const did = key.split(' ')[1]!;
          eventsByDid.set(did, [...(eventsByDid.get(did) ?? []), key]);
        }
        let checked = 0;
        for (let run = 0; run < runs; run++) {
          for (let n = 0; ; n++) {
            const did = didOf(run, n);
            const events = eventsByDid.get(did) ?? [];
            eventsByDid.delete(did);
            const row = accounts.getAccount(did);
            // Replay the script: the committed operations are exactly those whose events
            // all appear, in order; the row must be the state the last of them left.
            let consumed = 0;
            let state: AccountState | undefined;
            for (const op of accountScript(did, `r${run}a${n}`)) {
              if (consumed === events.length) break;
              assert.deepEqual(
                events.slice(consumed, consumed + op.events.length),
                op.events,
                `${did}: the events of each committed change, whole and in order`,
              );
              consumed += op.events.length;
              state = op.state;
            }
            assert.equal(consumed, events.length, `${did}: no event beyond the script`);
            if (!state) {
              assert.equal(row, undefined, `${did}: no events, so no account`);
              break; // the child never got further than this account in this run
            }
            assert.ok(row, `${did}: events were announced, so the account exists`);
            assert.deepEqual({ handle: row.handle, active: row.deactivatedAt === null }, state, did);
            checked++;
          }
        }
        assert.ok(checked >= runs, 'every run committed at least one account');
        assert.deepEqual([...eventsByDid.keys()], [], 'no events for accounts outside the script');
        service.close();
        accounts.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
