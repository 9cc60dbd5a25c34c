/** `portage admin` against a running Portage, each command checked by its effect on the server. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { runCli } from '../../migrate/test/helpers/network.ts';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';

describe('portage admin', () => {
  let pds: TestPds;
  let env: Record<string, string>;
  const admin = (...args: string[]) => runCli(['admin', ...args, '--url', pds.url], env);

  before(async () => {
    pds = await startTestPds({ env: { PDS_INVITE_REQUIRED: 'true' } });
    env = { PDS_ADMIN_PASSWORD: pds.ctx.config.adminPassword, PDS_HOSTNAME: '', PDS_CRAWLERS: '' };
  });
  after(async () => {
    await pds?.close();
  });

  it('creates, lists, takes down, restores, resets the password of and deletes an account', async () => {
    const created = await admin('account', 'create', 'jane@example.com', 'jane.test');
    assert.equal(created.code, 0, created.stderr);
    const did = /DID\s*: (did:\S+)/.exec(created.stdout)![1]!;
    const password = /Password : (\S+)/.exec(created.stdout)![1]!;
    const agent = new AtpAgent({ service: pds.url });
    await agent.login({ identifier: 'jane.test', password });

    const list = await admin('account', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`jane\\.test\\s+jane@example\\.com\\s+${did}\\s+active`));

    const down = await admin('account', 'takedown', did);
    assert.equal(down.code, 0, down.stderr);
    assert.notEqual(pds.ctx.accountManager.getAccount(did)!.takedownRef, null);
    await assert.rejects(agent.login({ identifier: 'jane.test', password }), { error: 'AccountTakedown' });
    assert.match((await admin('account', 'list')).stdout, /takendown/);
    const up = await admin('account', 'untakedown', did);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(pds.ctx.accountManager.getAccount(did)!.takedownRef, null);
    await agent.login({ identifier: 'jane.test', password });

    const reset = await admin('account', 'reset-password', did);
    assert.equal(reset.code, 0, reset.stderr);
    const newPassword = /New password for \S+: (\S+)/.exec(reset.stdout)![1]!;
    await assert.rejects(agent.login({ identifier: 'jane.test', password }));
    await agent.login({ identifier: 'jane.test', password: newPassword });

    const refused = await admin('account', 'delete', did);
    assert.equal(refused.code, 1, 'no terminal to confirm on: nothing deleted');
    assert.ok(pds.ctx.accountManager.getAccount(did));
    const deleted = await admin('account', 'delete', did, '--yes');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(pds.ctx.accountManager.getAccount(did), undefined);
  });

  it('creates invite codes that sign-up takes', async () => {
    const run = await admin('create-invite-code');
    assert.equal(run.code, 0, run.stderr);
    const inviteCode = run.stdout.trim();
    const agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'kim.test', email: 'kim@example.com', password: 'kim password', inviteCode });
    assert.ok(agent.session?.did);
  });

  it('asks relays to crawl this host', async () => {
    const asked: unknown[] = [];
    const relay: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        asked.push({ path: req.url, body: JSON.parse(body) as unknown });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;
      const run = await runCli(['admin', 'request-crawl'], {
        ...env,
        PDS_HOSTNAME: 'pds.example.com',
        PDS_CRAWLERS: relayUrl,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(asked, [{ path: '/xrpc/com.atproto.sync.requestCrawl', body: { hostname: 'pds.example.com' } }]);
    } finally {
      relay.close();
    }
  });

  it('says what went wrong, in a sentence, with exit codes 1 and 2', async () => {
    const wrong = await runCli(['admin', 'account', 'list', '--url', pds.url], { ...env, PDS_ADMIN_PASSWORD: 'wrong' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the admin password \(check PDS_ADMIN_PASSWORD\)/);
    const missing = await runCli(['admin', 'account', 'list', '--url', pds.url], { ...env, PDS_ADMIN_PASSWORD: '' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /set PDS_ADMIN_PASSWORD/);
    const unreachable = await runCli(['admin', 'create-invite-code', '--url', 'http://127.0.0.1:1'], env);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /could not reach the server at http:\/\/127\.0\.0\.1:1/);
    const badDid = await admin('account', 'takedown', 'jane.test');
    assert.equal(badDid.code, 2);
    assert.match(badDid.stderr, /"jane\.test" is not a DID/);
    const unknown = await admin('account', 'frobnicate');
    assert.equal(unknown.code, 2);
    const notFound = await admin('account', 'delete', 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', '--yes');
    assert.equal(notFound.code, 0, 'deleting what is not there is done');
  });
});
