/**
 * The world a restore test needs: Portage's PLC directory on a clock the test moves, a reference
 * PDS (the old server, stopped for good once accounts are backed up) and a Portage PDS (the new
 * server). Accounts get a rotation key the user holds the way a person would add one to an account
 * that is not moving: the old server emails a token and signs the operation.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestPds as ReferencePds } from '@atproto/dev-env';
import { generateSigningKey } from '@portage/atproto/crypto';
import { type RunningPlcDirectory, startPlcDirectory } from '../../pds/src/plc/server.ts';
import { startTestPds, type TestPds as PortagePds } from '../../pds/test/harness.ts';
import { type Account, createAccount, plcToken, repoRecords, runCli } from '../../migrate/test/helpers/network.ts';
import { startReferencePds } from '../../../test/support/reference-peers.ts';

export const HOUR = 3_600_000;

export interface RestoreNetwork {
  dir: string;
  plc: RunningPlcDirectory;
  old: ReferencePds;
  portage: PortagePds;
  /** Moves the PLC directory's clock: operations are stamped `offsetMs` from now. */
  setClock(offsetMs: number): void;
  /** Stops the old server for good (its files stay until close). */
  stopOld(): Promise<void>;
  close(): Promise<void>;
}

export async function startRestoreNetwork(dir: string): Promise<RestoreNetwork> {
  let offset = 0;
  const plc = await startPlcDirectory({
    port: 0,
    dataDirectory: join(dir, 'plc'),
    now: () => new Date(Date.now() + offset),
  });
  const old = await startReferencePds(dir, plc.url, { serviceDid: 'did:web:old-pds.test' });
  const portage = await startTestPds({ plcUrl: plc.url, env: { PDS_SERVICE_DID: 'did:web:new-pds.test' } });
  let stopped: Promise<void> | undefined;
  const stopOld = () => (stopped ??= old.close());
  return {
    dir,
    plc,
    old,
    portage,
    setClock(offsetMs) {
      offset = offsetMs;
    },
    stopOld,
    async close() {
      await portage.close().catch(() => {});
      await stopOld().catch(() => {});
      await plc.close().catch(() => {});
    },
  };
}

export interface BackedUpAccount extends Account {
  backupDir: string;
  keyFile: string;
  keyDid: string;
  records: Map<string, string>;
  preferences: unknown[];
}

/**
 * An account on the old server with records, blobs and preferences, a rotation key the user holds
 * (first in the DID's rotation keys, written to a 0600 file), and a `portage backup` of it.
 */
export async function backedUpAccount(
  net: RestoreNetwork,
  name: string,
  opts: { records?: number; blobs?: number; blobSize?: number } = {},
): Promise<BackedUpAccount> {
  const account = await createAccount(net.old, name, opts);
  const key = await generateSigningKey('secp256k1');
  const keyFile = join(net.dir, `${name}.key`);
  writeFileSync(keyFile, `${key.privateKeyHex()}\n`, { mode: 0o600 });
  await account.agent.com.atproto.identity.requestPlcOperationSignature();
  const token = await plcToken(net.old, account.did);
  assert.ok(token, 'the old server emailed a PLC token');
  const current = (await (await fetch(`${net.plc.url}/${account.did}/data`)).json()) as { rotationKeys: string[] };
  const signed = await account.agent.com.atproto.identity.signPlcOperation({
    token,
    rotationKeys: [key.did(), ...current.rotationKeys],
  });
  await account.agent.com.atproto.identity.submitPlcOperation({ operation: signed.data.operation });

  const backupDir = join(net.dir, `${name}-backup`);
  const run = await runCli(
    [
      'backup',
      '--from',
      account.did,
      '--from-pds',
      net.old.url,
      '--plc-url',
      net.plc.url,
      '--out',
      backupDir,
      '--json',
    ],
    { PORTAGE_PASSWORD: account.password },
  );
  assert.equal(run.code, 0, run.stderr + run.stdout);
  const prefs = await account.agent.app.bsky.actor.getPreferences();
  return {
    ...account,
    backupDir,
    keyFile,
    keyDid: key.did(),
    records: await repoRecords(net.old.url, account.did),
    preferences: prefs.data.preferences,
  };
}

/**
 * What a hostile old server does with its own rotation key: an operation that points the DID at
 * another server and drops every other rotation key, signed by the old server (through its
 * emailed-token flow) and sent straight to the directory.
 */
export async function hostileMove(net: RestoreNetwork, account: Account, endpoint: string): Promise<string> {
  await account.agent.com.atproto.identity.requestPlcOperationSignature();
  const token = await plcToken(net.old, account.did);
  assert.ok(token);
  const serverKey = (net.old.ctx.plcRotationKey as { did(): string }).did();
  const signed = await account.agent.com.atproto.identity.signPlcOperation({
    token,
    rotationKeys: [serverKey],
    services: { atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint } },
  });
  const res = await fetch(`${net.plc.url}/${account.did}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(signed.data.operation),
  });
  assert.equal(res.status, 200, await res.text());
  const log = (await (await fetch(`${net.plc.url}/${account.did}/log/audit`)).json()) as { cid: string }[];
  return log.at(-1)!.cid;
}

/** Arguments for `portage restore` of `account` into the Portage server, JSON events. */
export function restoreArgs(
  net: RestoreNetwork,
  account: BackedUpAccount,
  stateDir: string,
  extra: string[] = [],
): string[] {
  return [
    'restore',
    '--backup',
    account.backupDir,
    '--to',
    net.portage.url,
    '--recovery-key',
    account.keyFile,
    '--plc-url',
    net.plc.url,
    '--state-dir',
    stateDir,
    '--email',
    `${account.handle.split('.')[0]}@example.org`,
    '--json',
    ...extra,
  ];
}

export interface AuditEntry {
  cid: string;
  nullified: boolean;
  createdAt: string;
  operation: {
    rotationKeys?: string[];
    services?: Record<string, { endpoint: string }>;
    verificationMethods?: Record<string, string>;
  };
}

export async function auditLog(net: RestoreNetwork, did: string): Promise<AuditEntry[]> {
  return (await (await fetch(`${net.plc.url}/${did}/log/audit`)).json()) as AuditEntry[];
}
