/**
 * The com.atproto.admin methods besides takedowns, each checked by its effect through
 * @atproto/api with the admin password, each refused without it; the moderation service's
 * service JWT taken where the reference takes it (not for the admin-only methods).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { startTestPds, type TestPds } from './harness.ts';
import { xrpcError } from './xrpc-assert.ts';

const ADMIN_METHODS: [nsid: string, query: boolean][] = [
  // Queries' parameters are checked before their auth, as the reference checks them.
  ['com.atproto.admin.getAccountInfo?did=did:plc:abc', true],
  ['com.atproto.admin.getAccountInfos?dids=did:plc:abc', true],
  ['com.atproto.admin.searchAccounts', true],
  ['com.atproto.admin.getSubjectStatus?did=did:plc:abc', true],
  ['com.atproto.admin.getInviteCodes', true],
  ['com.atproto.admin.updateSubjectStatus', false],
  ['com.atproto.admin.updateAccountHandle', false],
  ['com.atproto.admin.updateAccountEmail', false],
  ['com.atproto.admin.updateAccountPassword', false],
  ['com.atproto.admin.deleteAccount', false],
  ['com.atproto.admin.enableAccountInvites', false],
  ['com.atproto.admin.disableAccountInvites', false],
  ['com.atproto.admin.disableInviteCodes', false],
  ['com.atproto.admin.sendEmail', false],
];

describe('the admin API', () => {
  let pds: TestPds;
  let agent: AtpAgent;
  let alice: { did: string; code: string };
  let bob: { did: string };
  const headers = () => ({
    authorization: `Basic ${Buffer.from(`admin:${pds.ctx.config.adminPassword}`).toString('base64')}`,
  });
  const admin = () => ({ headers: headers(), encoding: 'application/json' as const });

  before(async () => {
    pds = await startTestPds({ env: { PDS_INVITE_REQUIRED: 'true' } });
    agent = new AtpAgent({ service: pds.url });
    const {
      data: { code },
    } = await agent.com.atproto.server.createInviteCode({ useCount: 1 }, admin());
    const a = new AtpAgent({ service: pds.url });
    await a.createAccount({
      handle: 'alice.test',
      email: 'alice@example.com',
      password: 'alice password',
      inviteCode: code,
    });
    const { data: codes } = await agent.com.atproto.server.createInviteCodes(
      { codeCount: 1, useCount: 2, forAccounts: [a.session!.did] },
      admin(),
    );
    alice = { did: a.session!.did, code: codes.codes[0]!.codes[0]! };
    const b = new AtpAgent({ service: pds.url });
    await b.createAccount({
      handle: 'bob.test',
      email: 'bob@example.org',
      password: 'bob password',
      inviteCode: alice.code,
    });
    bob = { did: b.session!.did };
  });
  after(async () => {
    await pds?.close();
  });

  test('every admin method is refused without the admin password', async () => {
    for (const [nsid, query] of ADMIN_METHODS) {
      for (const authorization of [undefined, `Basic ${Buffer.from('admin:wrong').toString('base64')}`]) {
        const res = await fetch(`${pds.url}/xrpc/${nsid}`, {
          method: query ? 'GET' : 'POST',
          headers: {
            ...(authorization ? { authorization } : {}),
            ...(query ? {} : { 'content-type': 'application/json' }),
          },
          ...(query ? {} : { body: '{}' }),
        });
        assert.equal(res.status, 401, `${nsid} without the admin password`);
      }
    }
  });

  test('getAccountInfo, getAccountInfos and searchAccounts', async () => {
    const { data: info } = await agent.com.atproto.admin.getAccountInfo({ did: alice.did }, { headers: headers() });
    assert.equal(info.handle, 'alice.test');
    assert.equal(info.email, 'alice@example.com');
    assert.equal(info.invitesDisabled, false);
    assert.deepEqual(
      info.invites?.map((i) => [i.code, i.uses.map((u) => u.usedBy)]),
      [[alice.code, [bob.did]]],
    );
    const { data: bobInfo } = await agent.com.atproto.admin.getAccountInfo({ did: bob.did }, { headers: headers() });
    assert.equal(bobInfo.invitedBy?.code, alice.code);
    const missing = await xrpcError(
      agent.com.atproto.admin.getAccountInfo({ did: 'did:plc:nobody' }, { headers: headers() }),
    );
    assert.deepEqual([missing.status, missing.error], [400, 'NotFound']);

    const { data: infos } = await agent.com.atproto.admin.getAccountInfos(
      { dids: [alice.did, bob.did, 'did:plc:nobody'] },
      { headers: headers() },
    );
    assert.deepEqual(infos.infos.map((i) => i.handle).sort(), ['alice.test', 'bob.test']);

    const { data: found } = await agent.com.atproto.admin.searchAccounts({ email: 'bob@' }, { headers: headers() });
    assert.deepEqual(
      found.accounts.map((a) => a.did),
      [bob.did],
    );
    const { data: page } = await agent.com.atproto.admin.searchAccounts({ limit: 1 }, { headers: headers() });
    assert.equal(page.accounts.length, 1);
    const { data: rest } = await agent.com.atproto.admin.searchAccounts(
      { limit: 1, cursor: page.cursor },
      { headers: headers() },
    );
    assert.notEqual(rest.accounts[0]!.did, page.accounts[0]!.did);
  });

  test("invites: disable and enable an account's, disable codes, list them", async () => {
    await agent.com.atproto.admin.disableAccountInvites({ account: alice.did }, admin());
    assert.equal(
      (await agent.com.atproto.admin.getAccountInfo({ did: alice.did }, { headers: headers() })).data.invitesDisabled,
      true,
    );
    const refused = await xrpcError(
      new AtpAgent({ service: pds.url }).createAccount({
        handle: 'carol.test',
        email: 'carol@example.com',
        password: 'carol password',
        inviteCode: alice.code,
      }),
    );
    assert.equal(refused.error, 'InvalidInviteCode');
    await agent.com.atproto.admin.enableAccountInvites({ account: alice.did }, admin());
    assert.equal(
      (await agent.com.atproto.admin.getAccountInfo({ did: alice.did }, { headers: headers() })).data.invitesDisabled,
      false,
    );

    const { data: list } = await agent.com.atproto.admin.getInviteCodes({ sort: 'recent' }, { headers: headers() });
    assert.equal(list.codes.length, 2);
    assert.ok(list.codes.some((c) => c.code === alice.code && c.uses.length === 1 && c.forAccount === alice.did));
    const { data: byUse } = await agent.com.atproto.admin.getInviteCodes(
      { sort: 'usage', limit: 1 },
      { headers: headers() },
    );
    assert.equal(byUse.codes.length, 1);
    const { data: next } = await agent.com.atproto.admin.getInviteCodes(
      { sort: 'usage', limit: 1, cursor: byUse.cursor },
      { headers: headers() },
    );
    assert.equal(next.codes.length, 1);
    assert.notEqual(next.codes[0]!.code, byUse.codes[0]!.code);

    await agent.com.atproto.admin.disableInviteCodes({ codes: [alice.code] }, admin());
    const { data: after } = await agent.com.atproto.admin.getInviteCodes({ sort: 'recent' }, { headers: headers() });
    assert.equal(after.codes.find((c) => c.code === alice.code)?.disabled, true);
    const adminCodes = await xrpcError(agent.com.atproto.admin.disableInviteCodes({ accounts: ['admin'] }, admin()));
    assert.equal(adminCodes.status, 400);
  });

  test('updateAccountEmail, updateAccountPassword, updateAccountHandle', async () => {
    await agent.com.atproto.admin.updateAccountEmail({ account: 'bob.test', email: 'bob@example.net' }, admin());
    assert.equal(pds.ctx.accountManager.getAccount(bob.did)!.email, 'bob@example.net');

    await agent.com.atproto.admin.updateAccountPassword({ did: bob.did, password: 'a new password' }, admin());
    const old = await xrpcError(
      new AtpAgent({ service: pds.url }).login({ identifier: 'bob.test', password: 'bob password' }),
    );
    assert.equal(old.status, 401);
    await new AtpAgent({ service: pds.url }).login({ identifier: 'bob.test', password: 'a new password' });

    await agent.com.atproto.admin.updateAccountHandle({ did: bob.did, handle: 'robert.test' }, admin());
    const { data: resolved } = await agent.com.atproto.identity.resolveHandle({ handle: 'robert.test' });
    assert.equal(resolved.did, bob.did);
    const doc = (await (await fetch(`${pds.plcUrl}/${bob.did}`)).json()) as { alsoKnownAs: string[] };
    assert.deepEqual(doc.alsoKnownAs, ['at://robert.test']);
    const taken = await xrpcError(
      agent.com.atproto.admin.updateAccountHandle({ did: bob.did, handle: 'alice.test' }, admin()),
    );
    assert.equal(taken.status, 400);
  });

  test('sendEmail', async () => {
    const { data } = await agent.com.atproto.admin.sendEmail(
      {
        recipientDid: alice.did,
        senderDid: 'did:web:localhost',
        subject: 'About your posts',
        content: 'A note from the operator',
      },
      admin(),
    );
    assert.equal(data.sent, true);
    const outbox = readFileSync(pds.ctx.mailer.outboxPath, 'utf8');
    assert.match(outbox, /About your posts/);
    assert.match(outbox, /A note from the operator/);
  });

  test('deleteAccount', async () => {
    const c = new AtpAgent({ service: pds.url });
    const {
      data: { code },
    } = await agent.com.atproto.server.createInviteCode({ useCount: 1 }, admin());
    await c.createAccount({
      handle: 'carol.test',
      email: 'carol@example.com',
      password: 'carol password',
      inviteCode: code,
    });
    const did = c.session!.did;
    await agent.com.atproto.admin.deleteAccount({ did }, admin());
    assert.equal(pds.ctx.accountManager.getAccount(did), undefined);
    const gone = await xrpcError(agent.com.atproto.sync.getLatestCommit({ did }));
    assert.equal(gone.error, 'RepoNotFound');
    const signIn = await xrpcError(
      new AtpAgent({ service: pds.url }).login({ identifier: 'carol.test', password: 'carol password' }),
    );
    assert.equal(signIn.status, 401);
  });

  test("the moderation service's service JWT, where the reference takes it", async () => {
    // A second server trusting an account of the first as its moderation service.
    const moderated = await startTestPds({ plcUrl: pds.plcUrl, env: { PDS_MOD_SERVICE_DID: alice.did } });
    try {
      const mod = new AtpAgent({ service: pds.url });
      await mod.login({ identifier: 'alice.test', password: 'alice password' });
      const serviceJwt = async (lxm: string) =>
        (await mod.com.atproto.server.getServiceAuth({ aud: 'did:web:localhost', lxm })).data.token;
      const target = new AtpAgent({ service: moderated.url });
      await target.createAccount({ handle: 'dave.test', email: 'dave@example.com', password: 'dave password' });
      const did = target.session!.did;
      const other = new AtpAgent({ service: moderated.url });

      const { data } = await other.com.atproto.admin.getSubjectStatus(
        { did },
        { headers: { authorization: `Bearer ${await serviceJwt('com.atproto.admin.getSubjectStatus')}` } },
      );
      assert.deepEqual(data.takedown, { applied: false });
      await other.com.atproto.admin.updateSubjectStatus(
        { subject: { $type: 'com.atproto.admin.defs#repoRef', did }, takedown: { applied: true } },
        {
          encoding: 'application/json',
          headers: { authorization: `Bearer ${await serviceJwt('com.atproto.admin.updateSubjectStatus')}` },
        },
      );
      assert.notEqual(moderated.ctx.accountManager.getAccount(did)!.takedownRef, null);

      // Admin-only methods take the password, never a service JWT.
      const refused = await xrpcError(
        other.com.atproto.admin.deleteAccount(
          { did },
          {
            encoding: 'application/json',
            headers: { authorization: `Bearer ${await serviceJwt('com.atproto.admin.deleteAccount')}` },
          },
        ),
      );
      assert.equal(refused.status, 401);
      // Nor does any other issuer's JWT count.
      const stranger = await xrpcError(
        other.com.atproto.admin.getSubjectStatus(
          { did },
          {
            headers: {
              authorization: `Bearer ${(await target.com.atproto.server.getServiceAuth({ aud: 'did:web:localhost', lxm: 'com.atproto.admin.getSubjectStatus' })).data.token}`,
            },
          },
        ),
      );
      assert.equal(stranger.status, 401);
    } finally {
      await moderated.close();
    }
  });
});
