/**
 * Invite codes an account earns over time (PDS_INVITE_INTERVAL, PDS_INVITE_EPOCH), handed out by
 * getAccountInviteCodes with createAvailable, as the reference counts them.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AtpAgent } from '@atproto/api';
import { earnedCodesToCreate } from '../src/account/invites.ts';
import { startTestPds, type TestPds } from './harness.ts';

/** The server counts account lives in whole seconds, so the end-to-end test uses a whole second. */
const INTERVAL_MS = 1000;

async function signUpWithInvite(pds: TestPds, handle: string): Promise<AtpAgent> {
  const basic = `Basic ${Buffer.from(`admin:${pds.ctx.config.adminPassword}`).toString('base64')}`;
  const res = await fetch(`${pds.url}/xrpc/com.atproto.server.createInviteCode`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/json' },
    body: JSON.stringify({ useCount: 1 }),
  });
  const { code } = (await res.json()) as { code: string };
  const agent = new AtpAgent({ service: pds.url });
  await agent.createAccount({ handle, email: `${handle}@example.com`, password: 'invite-password', inviteCode: code });
  return agent;
}

describe('invite codes earned over time', () => {
  const servers: TestPds[] = [];
  after(async () => {
    for (const pds of servers) await pds.close();
  });
  const start = async (env: Record<string, string>) => {
    const pds = await startTestPds({ env: { PDS_INVITE_REQUIRED: 'true', ...env } });
    servers.push(pds);
    return pds;
  };

  it('hands out what the account earned, each code once', async () => {
    const pds = await start({ PDS_INVITE_INTERVAL: String(INTERVAL_MS) });
    const agent = await signUpWithInvite(pds, 'ivy.test');
    await sleep(INTERVAL_MS * 2 + 200);
    const first = (await agent.com.atproto.server.getAccountInviteCodes()).data.codes;
    assert.ok(first.length >= 1 && first.length <= 3, `${first.length} codes after two intervals`);
    for (const code of first) {
      assert.equal(code.forAccount, agent.session!.did);
      assert.equal(code.createdBy, agent.session!.did);
      assert.equal(code.disabled, false);
    }
    const again = (await agent.com.atproto.server.getAccountInviteCodes({ createAvailable: false })).data.codes;
    assert.deepEqual(again.map((c) => c.code).sort(), first.map((c) => c.code).sort());
  });

  it('counts only the part of the account’s life after the epoch', async () => {
    const pds = await start({
      PDS_INVITE_INTERVAL: String(INTERVAL_MS),
      PDS_INVITE_EPOCH: String(Date.now() + 60_000),
    });
    const agent = await signUpWithInvite(pds, 'jay.test');
    await sleep(INTERVAL_MS * 2 + 200);
    assert.deepEqual((await agent.com.atproto.server.getAccountInviteCodes()).data.codes, []);
  });

  it('earns nothing without an interval, or when invites are not required', async () => {
    const pds = await start({});
    const agent = await signUpWithInvite(pds, 'kim.test');
    await sleep(200);
    assert.deepEqual((await agent.com.atproto.server.getAccountInviteCodes()).data.codes, []);
  });
});

describe("how many invite codes an account has earned (the reference's count)", () => {
  const HOUR = 3_600_000;
  const code = (
    createdAt: number,
    extra: Partial<{ createdBy: string; disabled: boolean; available: number }> = {},
  ) => ({
    createdBy: 'did:plc:me',
    createdAt: new Date(createdAt).toISOString(),
    disabled: false,
    available: 1,
    ...extra,
  });
  const count = (opts: Partial<Parameters<typeof earnedCodesToCreate>[0]>) =>
    earnedCodesToCreate({ nowMs: 10 * HOUR, accountCreatedMs: 0, epochMs: 0, intervalMs: HOUR, codes: [], ...opts });

  it('one per interval of life, at most five unused', () => {
    assert.equal(count({ nowMs: 3 * HOUR }), 3);
    assert.equal(count({ nowMs: 3 * HOUR - 1 }), 2);
    assert.equal(count({}), 5);
    assert.equal(count({ codes: [code(HOUR), code(2 * HOUR)] }), 3, 'unused codes count against the five');
    assert.equal(
      count({ nowMs: 3 * HOUR, codes: [code(HOUR, { available: 0 }), code(2 * HOUR, { available: 0 })] }),
      1,
    );
  });

  it('only the life after the epoch counts, and codes the admin gave count for nothing', () => {
    assert.equal(count({ epochMs: 8 * HOUR }), 2);
    assert.equal(count({ epochMs: 8 * HOUR, codes: [code(HOUR, { available: 0 })] }), 2, 'codes from before the epoch');
    assert.equal(count({ nowMs: 2 * HOUR, codes: [code(HOUR, { createdBy: 'admin' })] }), 2);
    assert.equal(count({ epochMs: 20 * HOUR }), 0);
  });
});
