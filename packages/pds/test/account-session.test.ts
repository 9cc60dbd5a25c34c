import assert from 'node:assert/strict';
import { get as httpGet } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { startTestPds, type TestPds } from './harness.ts';
import { rejects } from './xrpc-assert.ts';

/** GET with an explicit Host header (fetch does not let callers set one). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** Asserts the call fails with this HTTP status and XRPC error name. */
describe('accounts and sessions through @atproto/api', () => {
  let pds: TestPds;
  let agent: AtpAgent;
  let did: string;
  const password = 'correct horse battery staple';
  const countRows = (table: string) =>
    (pds.ctx.accountManager.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

  before(async () => {
    pds = await startTestPds();
    agent = new AtpAgent({ service: pds.url });
    const res = await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password });
    did = res.data.did;
  });
  after(async () => {
    await pds.close();
  });

  it('creates a did:plc naming this PDS, the handle and a per-account signing key', async () => {
    assert.match(did, /^did:plc:[a-z2-7]{24}$/);
    assert.equal(agent.session?.handle, 'alice.test');
    const doc = await (await fetch(`${pds.plcUrl}/${did}`)).json();
    assert.deepEqual(doc.alsoKnownAs, ['at://alice.test']);
    assert.equal(doc.service[0].serviceEndpoint, pds.publicUrl);
    const data = await (await fetch(`${pds.plcUrl}/${did}/data`)).json();
    assert.deepEqual(data.rotationKeys, [pds.ctx.plcRotationKey.did()]);
    const signingKey = await pds.ctx.actorStore.getSigningKey(did);
    assert.equal(data.verificationMethods.atproto, signingKey.did());
    assert.ok(pds.ctx.actorStore.getRoot(did), 'the repo exists with a first commit');
  });

  it('logs in by handle, email and DID, and reports the session', async () => {
    for (const identifier of ['alice.test', 'ALICE@example.com', did]) {
      const a = new AtpAgent({ service: pds.url });
      const res = await a.login({ identifier, password });
      assert.equal(res.data.did, did);
      assert.equal(res.data.handle, 'alice.test');
      assert.equal(res.data.email, 'alice@example.com');
      const session = await a.com.atproto.server.getSession();
      assert.equal(session.data.did, did);
      assert.equal(session.data.active, true);
    }
  });

  it('refuses a wrong password with 401 AuthenticationRequired', async () => {
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password: 'nope' }),
      401,
      'AuthenticationRequired',
    );
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'nobody.test', password }),
      401,
      'AuthenticationRequired',
    );
  });

  it('rotates refresh tokens, with a grace period for reuse and none after it', async () => {
    const a = new AtpAgent({ service: pds.url });
    await a.login({ identifier: 'alice.test', password });
    const first = a.session!.refreshJwt;
    const refreshWith = (token: string) =>
      fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
    const r1 = await refreshWith(first);
    assert.equal(r1.status, 200);
    const s1 = await r1.json();
    assert.equal(s1.did, did);
    assert.notEqual(s1.refreshJwt, first);
    // A retry inside the grace period gets a session with the same successor token id.
    const r2 = await refreshWith(first);
    assert.equal(r2.status, 200);
    const jti = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).jti;
    assert.equal(jti((await r2.json()).refreshJwt), jti(s1.refreshJwt));
    // Move the old token past its grace period: reuse is refused, the successor still works.
    pds.ctx.accountManager.db
      .prepare('UPDATE refresh_token SET expires_at = ? WHERE id = ?')
      .run(Math.floor(Date.now() / 1000) - 1, jti(first));
    const r3 = await refreshWith(first);
    assert.equal(r3.status, 400);
    assert.equal((await r3.json()).error, 'ExpiredToken');
    const r4 = await refreshWith(s1.refreshJwt);
    assert.equal(r4.status, 200);
  });

  it('refreshes through the official client and keeps working', async () => {
    const a = new AtpAgent({ service: pds.url });
    await a.login({ identifier: 'alice.test', password });
    const before = a.session!.refreshJwt;
    await a.sessionManager.refreshSession();
    assert.notEqual(a.session!.refreshJwt, before);
    assert.equal((await a.com.atproto.server.getSession()).data.did, did);
  });

  it('ends a session with deleteSession', async () => {
    const a = new AtpAgent({ service: pds.url });
    await a.login({ identifier: 'alice.test', password });
    const refreshJwt = a.session!.refreshJwt;
    await a.logout();
    const res = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
      method: 'POST',
      headers: { authorization: `Bearer ${refreshJwt}` },
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'ExpiredToken');
  });

  it('creates, lists, logs in with and revokes app passwords; they cannot mint more', async () => {
    const created = await agent.com.atproto.server.createAppPassword({ name: 'phone' });
    assert.match(created.data.password, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
    const list = await agent.com.atproto.server.listAppPasswords();
    assert.deepEqual(
      list.data.passwords.map((p) => p.name),
      ['phone'],
    );
    await rejects(agent.com.atproto.server.createAppPassword({ name: 'phone' }), 400, 'DuplicateAppPassword');

    const app = new AtpAgent({ service: pds.url });
    const login = await app.login({ identifier: 'alice.test', password: created.data.password });
    assert.equal(login.data.did, did);
    assert.equal(login.data.email, undefined, 'an unprivileged app password does not see the email');
    const before = countRows('app_password');
    await rejects(app.com.atproto.server.createAppPassword({ name: 'sneaky' }), 400, 'InvalidToken');
    assert.equal(countRows('app_password'), before, 'nothing was created');

    const appRefresh = app.session!.refreshJwt;
    await agent.com.atproto.server.revokeAppPassword({ name: 'phone' });
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password: created.data.password }),
      401,
      'AuthenticationRequired',
    );
    const refreshed = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
      method: 'POST',
      headers: { authorization: `Bearer ${appRefresh}` },
    });
    assert.equal(refreshed.status, 400, 'sessions of a revoked app password end');
  });

  it('stores app.bsky preferences per account and checks them', async () => {
    const prefs = [
      { $type: 'app.bsky.actor.defs#adultContentPref', enabled: false },
      { $type: 'app.bsky.actor.defs#savedFeedsPrefV2', items: [] },
    ];
    await agent.app.bsky.actor.putPreferences({ preferences: prefs });
    const got = await agent.app.bsky.actor.getPreferences();
    assert.deepEqual(got.data.preferences, prefs);
    await rejects(
      agent.app.bsky.actor.putPreferences({ preferences: [{ $type: 'com.example.pref' }] }),
      400,
      'InvalidRequest',
    );
    const noType = await fetch(`${pds.url}/xrpc/app.bsky.actor.putPreferences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${agent.session!.accessJwt}` },
      body: JSON.stringify({ preferences: [{ enabled: true }] }),
    });
    assert.equal(noType.status, 400);
    assert.equal(
      (await noType.json()).message,
      'Expected an object which includes the "$type" property value type (got {"enabled": ...}) at $.preferences[0]',
    );
    assert.deepEqual((await agent.app.bsky.actor.getPreferences()).data.preferences, prefs, 'unchanged');

    const other = new AtpAgent({ service: pds.url });
    await other.createAccount({ handle: 'bob.test', email: 'bob@example.com', password });
    assert.deepEqual((await other.app.bsky.actor.getPreferences()).data.preferences, []);
  });

  it('keeps personal details away from app passwords', async () => {
    const details = { $type: 'app.bsky.actor.defs#personalDetailsPref', birthDate: '1990-01-01T00:00:00.000Z' };
    await agent.app.bsky.actor.putPreferences({ preferences: [details] });
    const full = (await agent.app.bsky.actor.getPreferences()).data.preferences;
    assert.ok(full.some((p) => p.$type === 'app.bsky.actor.defs#declaredAgePref'));
    const pw = await agent.com.atproto.server.createAppPassword({ name: 'limited' });
    const app = new AtpAgent({ service: pds.url });
    await app.login({ identifier: 'alice.test', password: pw.data.password });
    const seen = (await app.app.bsky.actor.getPreferences()).data.preferences;
    assert.ok(!seen.some((p) => p.$type === 'app.bsky.actor.defs#personalDetailsPref'));
    await rejects(app.app.bsky.actor.putPreferences({ preferences: [details] }), 400, 'InvalidRequest');
    // Writing other preferences with the app password leaves the hidden ones alone.
    await app.app.bsky.actor.putPreferences({ preferences: [] });
    const after = (await agent.app.bsky.actor.getPreferences()).data.preferences;
    assert.ok(after.some((p) => p.$type === 'app.bsky.actor.defs#personalDetailsPref'));
  });

  it('updates the handle through PLC and resolves it locally and by well-known', async () => {
    await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' });
    const doc = await (await fetch(`${pds.plcUrl}/${did}`)).json();
    assert.deepEqual(doc.alsoKnownAs, ['at://alice2.test']);
    const resolved = await agent.com.atproto.identity.resolveHandle({ handle: 'alice2.test' });
    assert.equal(resolved.data.did, did);
    await rejects(agent.com.atproto.identity.resolveHandle({ handle: 'alice.test' }), 400, 'HandleNotFound');
    assert.equal((await agent.com.atproto.server.getSession()).data.handle, 'alice2.test');
    const wellKnown = await getWithHost(`${pds.url}/.well-known/atproto-did`, 'alice2.test');
    assert.deepEqual(wellKnown, { status: 200, body: did });
    const unknown = await getWithHost(`${pds.url}/.well-known/atproto-did`, 'nobody.test');
    assert.equal(unknown.status, 404);
  });

  it('refuses a handle update to a taken, reserved or foreign handle, changing nothing', async () => {
    await rejects(agent.com.atproto.identity.updateHandle({ handle: 'bob.test' }), 400, 'HandleNotAvailable');
    await rejects(agent.com.atproto.identity.updateHandle({ handle: 'admin.test' }), 400, 'HandleNotAvailable');
    await rejects(agent.com.atproto.identity.updateHandle({ handle: 'not a handle' }), 400, 'InvalidHandle');
    await rejects(agent.com.atproto.identity.updateHandle({ handle: 'elsewhere.example.com' }), 400, 'InvalidRequest');
    const log = await (await fetch(`${pds.plcUrl}/${did}/log`)).json();
    assert.equal(log.length, 2, 'only the genesis and the one successful update');
    assert.equal((await agent.com.atproto.server.getSession()).data.handle, 'alice2.test');
  });

  it('refuses bad sign-ups with the reference error names, creating nothing', async () => {
    const fresh = () => new AtpAgent({ service: pds.url });
    const accountsBefore = countRows('account');
    const plcBefore = (await (await fetch(`${pds.plcUrl}/export?count=1000`)).text()).trim().split('\n').length;
    const cases: [Parameters<AtpAgent['createAccount']>[0], string, string?][] = [
      [{ handle: 'bad handle!.test', email: 'x1@example.com', password }, 'InvalidHandle'],
      [{ handle: 'admin.test', email: 'x2@example.com', password }, 'HandleNotAvailable', 'Reserved handle'],
      [{ handle: 'ab.test', email: 'x3@example.com', password }, 'InvalidHandle', 'Handle too short'],
      [{ handle: 'a.b.test', email: 'x3b@example.com', password }, 'InvalidHandle', 'Invalid characters in handle'],
      [{ handle: 'carol.example.com', email: 'x4@example.com', password }, 'UnsupportedDomain'],
      [{ handle: 'bob.test', email: 'x5@example.com', password }, 'InvalidRequest', 'Handle already taken: bob.test'],
      [
        { handle: 'carol.test', email: 'BOB@example.com', password },
        'InvalidRequest',
        'Email already taken: BOB@example.com',
      ],
      [{ handle: 'carol.test', email: 'not-an-email', password }, 'InvalidRequest'],
      [{ handle: 'carol.test', password }, 'InvalidRequest', 'Email is required'],
      [{ handle: 'carol.test', email: 'x6@example.com' }, 'InvalidRequest', 'Password is required'],
    ];
    for (const [input, error, message] of cases) {
      await assert.rejects(fresh().createAccount(input), (err: { status: number; error: string; message: string }) => {
        assert.equal(err.status, 400, JSON.stringify(input));
        assert.equal(err.error, error, JSON.stringify(input));
        if (message) assert.equal(err.message, message);
        return true;
      });
    }
    assert.equal(countRows('account'), accountsBefore);
    const plcAfter = (await (await fetch(`${pds.plcUrl}/export?count=1000`)).text()).trim().split('\n').length;
    assert.equal(plcAfter, plcBefore, 'no DID was registered');
  });

  it('rejects malformed requests to account methods', async () => {
    const post = (nsid: string, body: string) =>
      fetch(`${pds.url}/xrpc/${nsid}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const badJson = await post('com.atproto.server.createSession', '{"identifier":');
    assert.equal(badJson.status, 400);
    assert.equal((await badJson.json()).error, 'InvalidRequest');
    const missing = await post('com.atproto.server.createSession', JSON.stringify({ identifier: 'alice2.test' }));
    assert.deepEqual(await missing.json(), {
      error: 'InvalidRequest',
      message: 'Missing required key "password" at $',
    });
    const wrongType = await post('com.atproto.server.createAccount', JSON.stringify({ handle: 5 }));
    assert.deepEqual(await wrongType.json(), {
      error: 'InvalidRequest',
      message: 'Expected string value type (got 5) at $.handle',
    });
    const noParam = await fetch(`${pds.url}/xrpc/com.atproto.identity.resolveHandle`);
    assert.equal(noParam.status, 400);
    assert.equal(
      (await noParam.json()).message,
      'Invalid com.atproto.identity.resolveHandle params: Missing required key "handle"',
    );
    const unknown = await fetch(`${pds.url}/xrpc/com.atproto.server.noSuchMethod`);
    assert.equal(unknown.status, 501);
    assert.equal((await unknown.json()).error, 'MethodNotImplemented');
    const noAuth = await fetch(`${pds.url}/xrpc/com.atproto.server.getSession`);
    assert.equal(noAuth.status, 401);
  });
});
