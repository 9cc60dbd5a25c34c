/**
 * Our migration engine against Portage's PDS, with the reference PDS (@atproto/dev-env) and its
 * PLC directory as the peer and the judge: one account goes reference -> Portage -> reference,
 * another Portage -> Portage. After each move the new side holds the same records (read from a
 * CAR export verified against the key the DID document names), every blob by CID, equal
 * preferences; the PLC audit log shows every operation accepted; the old side is deactivated and
 * the new one active.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { migrate } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { MemoryStorage } from '../src/storage.ts';
import { outboxToken, startTestPds, type TestPds as PortagePds } from '../../pds/test/harness.ts';
import { type Account, createAccount, type Network, plcToken, startNetwork } from './helpers/network.ts';

/** One side of a migration, whichever implementation it is. */
interface Side {
  name: string;
  /** Where requests go. */
  url: string;
  /** The URL the server publishes in DID documents. */
  endpoint: string;
  /** The PLC token this server mailed to the account. */
  readPlcToken(did: string): Promise<string | undefined>;
  /**
   * Whether an imported head commit gets re-signed with this server's key on activation
   * (Portage does; the reference keeps the old server's signature until the next write).
   */
  resignsImports: boolean;
}

let net: Network;
let reference: Side;
const portages: PortagePds[] = [];
const portageSides: Side[] = [];

before(async () => {
  net = await startNetwork(1);
  const ref = net.pdses[0]!;
  reference = {
    name: 'reference',
    url: ref.url,
    endpoint: ref.url,
    readPlcToken: (did) => plcToken(ref, did),
    resignsImports: false,
  };
  for (const name of ['portage-a', 'portage-b']) {
    const pds = await startTestPds({ plcUrl: net.plc.url, env: { PDS_SERVICE_DID: `did:web:${name}.test` } });
    portages.push(pds);
    portageSides.push({
      name,
      url: pds.url,
      endpoint: pds.publicUrl,
      resignsImports: true,
      readPlcToken: async (did) => {
        const email = pds.ctx.accountManager.getAccount(did)?.email;
        return email ? outboxToken(pds.ctx.mailer.outboxPath, email) : undefined;
      },
    });
  }
});

after(async () => {
  for (const pds of portages) await pds.close().catch(() => {});
  await net?.close();
});

interface Before {
  records: Map<string, string>;
  preferences: unknown[];
}

interface AuditEntry {
  nullified: boolean;
  operation: { services?: Record<string, { endpoint: string }>; verificationMethods?: Record<string, string> };
}

async function auditLog(did: string): Promise<AuditEntry[]> {
  return (await (await fetch(`${net.plc.url}/${did}/log/audit`)).json()) as AuditEntry[];
}

/**
 * The records of the account's repo (collection/rkey -> CID), from a full CAR export verified
 * (every block, the tree, and the head's signature by `signingKey`, default the DID's current key).
 */
async function verifiedRecords(pdsUrl: string, did: string, signingKey?: string): Promise<Map<string, string>> {
  const key = signingKey ?? (await auditLog(did)).at(-1)!.operation.verificationMethods!.atproto;
  const res = await fetch(`${pdsUrl}/xrpc/com.atproto.sync.getRepo?${new URLSearchParams({ did })}`);
  assert.equal(res.status, 200, `getRepo on ${pdsUrl}`);
  const repo = await verifyRepoCar(new Uint8Array(await res.arrayBuffer()), did, key);
  return new Map(repo.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
}

async function take(side: Side, account: Account): Promise<Before> {
  const agent = new AtpAgent({ service: side.url });
  await agent.login({ identifier: account.did, password: account.password });
  const prefs = await agent.app.bsky.actor.getPreferences();
  return { records: await verifiedRecords(side.url, account.did), preferences: prefs.data.preferences };
}

/** Runs our engine in-process from `from` to `to`, answering the PLC token from the old side's mail. */
async function move(account: Account, from: Side, to: Side): Promise<void> {
  const events: MigrationEvent[] = [];
  const result = await migrate(
    { from: account.did, fromPds: from.url, to: to.url, plcUrl: net.plc.url, concurrency: 4 },
    {
      storage: new MemoryStorage(),
      credentials: {
        oldPassword: async () => account.password,
        newPassword: async () => account.password,
        authFactorToken: async () => undefined,
        plcToken: async (requested) => (requested ? from.readPlcToken(account.did) : undefined),
      },
      onEvent: (e) => events.push(e),
    },
  );
  assert.equal(result.status, 'done', `${from.name} -> ${to.name}: ${result.message}`);
  const done = events.filter((e) => e.type === 'step-done').map((e) => (e as { step: string }).step);
  assert.deepEqual(done, [
    'resolve',
    'login-old',
    'inspect-new',
    'checks',
    'create-account',
    'repo',
    'blobs',
    'preferences',
    'verify',
    'identity',
    'activate',
    'deactivate-old',
  ]);
}

/** Everything a finished move must show. `operations` = PLC operations expected in the log by now. */
async function checkMoved(account: Account, from: Side, to: Side, before: Before, operations: number): Promise<void> {
  const audit = await auditLog(account.did);
  // Portage's head is signed with the key the DID now names; the reference's still with the old server's.
  const signer = audit.at(to.resignsImports ? -1 : -2)!.operation.verificationMethods!.atproto;
  const records = await verifiedRecords(to.url, account.did, signer);
  assert.ok(before.records.size > account.blobCids.length);
  assert.deepEqual([...records].sort(), [...before.records].sort(), 'the same records');

  for (const cid of account.blobCids) {
    const res = await fetch(
      `${to.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
    );
    assert.equal(res.status, 200, `blob ${cid} on ${to.name}`);
    assert.equal(formatCid(cidForRaw(new Uint8Array(await res.arrayBuffer()))), cid, 'the blob bytes hash to its CID');
  }

  assert.equal(audit.length, operations, 'one PLC operation per move, after the genesis');
  assert.ok(
    audit.every((e) => !e.nullified),
    'every operation accepted, none nullified',
  );
  assert.equal(audit.at(-1)!.operation.services?.atproto_pds?.endpoint, to.endpoint, 'the DID names the new PDS');

  const neu = new AtpAgent({ service: to.url });
  await neu.login({ identifier: account.did, password: account.password });
  const status = await neu.com.atproto.server.checkAccountStatus();
  assert.equal(status.data.activated, true, 'the new account is active');
  assert.equal(status.data.validDid, true, 'the DID document names the new PDS and its key');
  assert.equal(status.data.expectedBlobs, account.blobCids.length);
  assert.equal(status.data.importedBlobs, account.blobCids.length);
  const prefs = await neu.app.bsky.actor.getPreferences();
  assert.deepEqual(prefs.data.preferences, before.preferences, 'equal preferences');

  const old = new AtpAgent({ service: from.url });
  await old.login({ identifier: account.did, password: account.password });
  assert.equal(old.session?.active, false, 'the old account is deactivated');
  const oldRepo = await fetch(
    `${from.url}/xrpc/com.atproto.sync.getRepoStatus?${new URLSearchParams({ did: account.did })}`,
  );
  assert.equal(((await oldRepo.json()) as { active: boolean }).active, false, 'the old repo reports inactive');
}

describe('our engine between the reference PDS and Portage (one dev-env PLC)', () => {
  it('moves an account reference -> Portage -> reference', async () => {
    const [portage] = portageSides;
    const alice = await createAccount(net.pdses[0]!, 'alice', { records: 400, blobs: 6, blobSize: 30_000 });

    const first = await take(reference, alice);
    await move(alice, reference, portage!);
    await checkMoved(alice, reference, portage!, first, 2);

    const second = await take(portage!, alice);
    assert.deepEqual([...second.records].sort(), [...first.records].sort());
    await move(alice, portage!, reference);
    await checkMoved(alice, portage!, reference, second, 3);
  });

  it('moves an account Portage -> Portage', async () => {
    const [a, b] = portageSides;
    const bob = await createAccount(a!, 'bob', {
      records: 400,
      blobs: 6,
      blobSize: 30_000,
    });
    const first = await take(a!, bob);
    await move(bob, a!, b!);
    await checkMoved(bob, a!, b!, first, 2);
  });
});
