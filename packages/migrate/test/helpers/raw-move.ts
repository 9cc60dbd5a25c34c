/**
 * Another tool's half-finished move, for the doctor's tests: raw XRPC calls that do only the parts
 * of a move asked for, between any two servers.
 */
import assert from 'node:assert/strict';
import { AtpAgent } from '@atproto/api';
import type { Account } from './network.ts';

/** The two ends of a raw move, and how to read the PLC code the old one emailed. */
export interface Servers {
  oldUrl: string;
  newUrl: string;
  newDid: string;
  plcToken(did: string, email: string): Promise<string | undefined>;
}

/**
 * Another tool's move, made of raw XRPC calls, doing only the parts asked for: the account on the
 * new server (always), the repo import, the blobs, the PLC update, activation, deactivation.
 * The new account gets the same password unless `newPassword` says otherwise.
 */
export async function rawMove(
  account: Account,
  email: string,
  parts: { importRepo: boolean; blobs: boolean; plc: boolean; activateNew: boolean; deactivateOld: boolean },
  servers: Servers,
  newPassword = account.password,
): Promise<AtpAgent> {
  const old = account.agent;
  const { data: auth } = await old.com.atproto.server.getServiceAuth({
    aud: servers.newDid,
    lxm: 'com.atproto.server.createAccount',
  });
  const created = await fetch(`${servers.newUrl}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { authorization: `Bearer ${auth.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ did: account.did, handle: account.handle, email, password: newPassword }),
  });
  assert.equal(created.status, 200, await created.clone().text());
  const neu = new AtpAgent({ service: servers.newUrl });
  await neu.login({ identifier: account.did, password: newPassword });
  if (parts.importRepo) {
    const car = await fetch(
      `${servers.oldUrl}/xrpc/com.atproto.sync.getRepo?${new URLSearchParams({ did: account.did })}`,
    );
    await neu.com.atproto.repo.importRepo(new Uint8Array(await car.arrayBuffer()), {
      encoding: 'application/vnd.ipld.car',
    });
  }
  if (parts.blobs) {
    for (const cid of account.blobCids) {
      const res = await fetch(
        `${servers.oldUrl}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
      );
      await neu.com.atproto.repo.uploadBlob(new Uint8Array(await res.arrayBuffer()), { encoding: 'image/jpeg' });
    }
  }
  if (parts.plc) {
    await old.com.atproto.identity.requestPlcOperationSignature();
    const token = (await servers.plcToken(account.did, email))!;
    const { data: creds } = await neu.com.atproto.identity.getRecommendedDidCredentials();
    const { data: signed } = await old.com.atproto.identity.signPlcOperation({ token, ...creds });
    await neu.com.atproto.identity.submitPlcOperation({ operation: signed.operation });
  }
  if (parts.activateNew) await neu.com.atproto.server.activateAccount();
  if (parts.deactivateOld) await old.com.atproto.server.deactivateAccount({});
  return neu;
}
