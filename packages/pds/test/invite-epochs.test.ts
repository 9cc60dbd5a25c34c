/**
 * Invite codes an account earns over time (PDS_INVITE_INTERVAL, PDS_INVITE_EPOCH), handed out by
 * getAccountInviteCodes with createAvailable, as the reference counts them.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AtpAgent } from '@atproto/api';
import { startTestPds, type TestPds } from './harness.ts';

const INTERVAL_MS = 400;

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

  it('earns one per interval of the account’s life, at most five unused, each created once', async () => {
    const pds = await start({ PDS_INVITE_INTERVAL: String(INTERVAL_MS) });
    const agent = await signUpWithInvite(pds, 'ivy.test');
    assert.deepEqual((await agent.com.atproto.server.getAccountInviteCodes()).data.codes, [], 'none earned yet');
    await sleep(INTERVAL_MS * 3 + 100);
    const first = (await agent.com.atproto.server.getAccountInviteCodes()).data.codes;
    assert.ok(first.length >= 3 && first.length <= 5, `${first.length} codes after three intervals`);
    for (const code of first) {
      assert.equal(code.forAccount, agent.session!.did);
      assert.equal(code.createdBy, agent.session!.did);
      assert.equal(code.disabled, false);
    }
    const again = (await agent.com.atproto.server.getAccountInviteCodes()).data.codes;
    assert.deepEqual(
      again.map((c) => c.code).sort(),
      first.map((c) => c.code).sort(),
      'asking again creates nothing new within the interval',
    );
    await sleep(INTERVAL_MS * 6);
    const capped = (await agent.com.atproto.server.getAccountInviteCodes()).data.codes;
    assert.equal(capped.length, 5, 'never more than five unused');
    const without = (await agent.com.atproto.server.getAccountInviteCodes({ createAvailable: false })).data.codes;
    assert.equal(without.length, 5);
  });

  it('counts only the part of the account’s life after the epoch', async () => {
    const pds = await start({
      PDS_INVITE_INTERVAL: String(INTERVAL_MS),
      PDS_INVITE_EPOCH: String(Date.now() + 60_000),
    });
    const agent = await signUpWithInvite(pds, 'jay.test');
    await sleep(INTERVAL_MS * 2 + 100);
    assert.deepEqual((await agent.com.atproto.server.getAccountInviteCodes()).data.codes, []);
  });

  it('earns nothing without an interval, or when invites are not required', async () => {
    const pds = await start({});
    const agent = await signUpWithInvite(pds, 'kim.test');
    await sleep(200);
    assert.deepEqual((await agent.com.atproto.server.getAccountInviteCodes()).data.codes, []);
  });
});
