/**
 * OAuth bad input, each refused with the spec's error and changing nothing: a client written
 * out by hand (jose for its keys and proofs) whose metadata document a loopback server serves,
 * going through PAR, the sign-in and consent forms over plain HTTP, and the token endpoint; and
 * the resource server's checks of DPoP calls. The production address guard is tested on the
 * client resolver with loopback refused.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type JWK, type KeyLike, SignJWT } from 'jose';
import { createLogger } from '../src/logger.ts';
import { ClientResolver } from '../src/oauth/clients.ts';
import { Upstream } from '../src/proxy/upstream.ts';
import { outboxToken, startTestPds, type TestPds } from './harness.ts';

const PASSWORD = 'correct horse battery staple';

interface DpopKey {
  privateKey: KeyLike;
  jwk: JWK;
}

async function newDpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, jwk: await exportJWK(publicKey) };
}

async function proof(
  key: DpopKey,
  htm: string,
  htu: string,
  extra: { nonce?: string; ath?: string; jti?: string; iat?: number } = {},
): Promise<string> {
  const { jti = randomBytes(12).toString('base64url'), iat = Math.floor(Date.now() / 1000), ...rest } = extra;
  return new SignJWT({ htm, htu, jti, iat, ...rest })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .sign(key.privateKey);
}

const b64sha = (s: string) => createHash('sha256').update(s).digest('base64url');

describe('OAuth refusals', () => {
  let pds: TestPds;
  let clientHost: Server;
  let clientBase: string;
  let clientId: string;
  let redirectUri: string;
  const documents = new Map<string, unknown>();
  let key: DpopKey;
  let nonce = '';
  let did: string;
  let clientKey: KeyLike;
  /** Everything the PDS logged (trace level), and every credential the run handled. */
  let logText = '';
  const secrets = new Set<string>([PASSWORD]);
  const keep = (value: string | undefined) => {
    if (!value) return;
    secrets.add(value);
    const parts = value.split('.');
    if (parts.length === 3) secrets.add(parts[2]!);
  };

  const endpoint = (path: string) => `${pds.publicUrl}${path}`;
  const local = (path: string) => `${pds.url}${path}`;

  async function post(path: string, body: Record<string, string>, dpop?: string) {
    const res = await fetch(local(path), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) },
      body: new URLSearchParams(body),
    });
    const next = res.headers.get('dpop-nonce');
    if (next) nonce = next;
    keep(dpop);
    const json = (await res.json()) as Record<string, string>;
    keep(json.access_token);
    keep(json.refresh_token);
    return { status: res.status, body: json };
  }

  async function par(overrides: Record<string, string> = {}, k = key) {
    const verifier = randomBytes(32).toString('base64url');
    const res = await post(
      '/oauth/par',
      {
        client_id: clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: 'atproto transition:generic',
        state: randomBytes(8).toString('hex'),
        code_challenge: b64sha(verifier),
        code_challenge_method: 'S256',
        ...overrides,
      },
      await proof(k, 'POST', endpoint('/oauth/par'), { nonce }),
    );
    return { ...res, verifier };
  }

  /** Signs in and agrees through the page's forms, returning the code the redirect carries. */
  async function approve(requestUri: string, forClient = clientId): Promise<string> {
    const pageUrl = local(`/oauth/authorize?${new URLSearchParams({ request_uri: requestUri, client_id: forClient })}`);
    const signInPage = await (await fetch(pageUrl)).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(signInPage)![1]!;
    const signedIn = await fetch(local('/oauth/authorize/sign-in'), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ request_uri: requestUri, csrf, handle: 'bob.test', password: PASSWORD }),
    });
    assert.equal(signedIn.status, 303);
    const cookie = signedIn.headers.get('set-cookie')!.split(';')[0]!;
    const consentPage = await (await fetch(pageUrl, { headers: { cookie } })).text();
    const consentCsrf = /name="csrf" value="([^"]+)"/.exec(consentPage)![1]!;
    const agreed = await fetch(local('/oauth/authorize/consent'), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ request_uri: requestUri, csrf: consentCsrf, decision: 'allow' }),
    });
    assert.equal(agreed.status, 303);
    const location = new URL(agreed.headers.get('location')!);
    assert.equal(location.searchParams.get('iss'), pds.publicUrl);
    keep(location.searchParams.get('code')!);
    return location.searchParams.get('code')!;
  }

  async function exchange(code: string, verifier: string, k = key, extra: Record<string, string> = {}) {
    return post(
      '/oauth/token',
      {
        grant_type: 'authorization_code',
        client_id: clientId,
        redirect_uri: redirectUri,
        code,
        code_verifier: verifier,
        ...extra,
      },
      await proof(k, 'POST', endpoint('/oauth/token'), { nonce }),
    );
  }

  async function tokens(): Promise<Record<string, string>> {
    const { body, verifier } = await par();
    const code = await approve(body.request_uri!);
    const res = await exchange(code, verifier);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  async function xrpc(path: string, token: string, dpop: string, init: RequestInit = {}) {
    const res = await fetch(local(`/xrpc/${path}`), {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: `DPoP ${token}`, dpop },
    });
    const next = res.headers.get('dpop-nonce');
    if (next) nonce = next;
    return {
      status: res.status,
      body: (await res.json()) as Record<string, string>,
      www: res.headers.get('www-authenticate'),
    };
  }

  before(async () => {
    clientHost = createServer((req, res) => {
      const doc = documents.get(req.url ?? '');
      if (!doc) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
    });
    await new Promise<void>((resolve) => clientHost.listen(0, '127.0.0.1', resolve));
    clientBase = `http://127.0.0.1:${(clientHost.address() as AddressInfo).port}`;
    clientId = `${clientBase}/client-metadata.json`;
    redirectUri = `${clientBase}/callback`;
    const metadata = {
      client_id: clientId,
      client_name: 'Hand-written app',
      redirect_uris: [redirectUri],
      scope: 'atproto transition:generic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      dpop_bound_access_tokens: true,
    };
    documents.set('/client-metadata.json', metadata);
    documents.set('/liar.json', { ...metadata, client_id: `${clientBase}/someone-else.json` });
    const confidential = await generateKeyPair('ES256');
    clientKey = confidential.privateKey;
    documents.set('/confidential.json', {
      ...metadata,
      client_id: `${clientBase}/confidential.json`,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...(await exportJWK(confidential.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] },
    });
    const logSink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logText += chunk.toString('utf8');
        done();
      },
    });
    pds = await startTestPds({ logger: createLogger('trace', logSink) });
    const created = await fetch(local('/xrpc/com.atproto.server.createAccount'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: 'bob.test', email: 'bob@example.com', password: PASSWORD }),
    });
    assert.equal(created.status, 200);
    ({ did } = (await created.json()) as { did: string });
    key = await newDpopKey();
  });

  after(async () => {
    await pds?.close();
    clientHost?.closeAllConnections();
    clientHost?.close();
  });

  it('serves both metadata documents and the JWKS', async () => {
    const as = (await (await fetch(local('/.well-known/oauth-authorization-server'))).json()) as Record<
      string,
      unknown
    >;
    assert.equal(as.issuer, pds.publicUrl);
    assert.equal(as.require_pushed_authorization_requests, true);
    assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
    assert.equal(as.client_id_metadata_document_supported, true);
    const pr = (await (await fetch(local('/.well-known/oauth-protected-resource'))).json()) as Record<string, unknown>;
    assert.deepEqual(pr.authorization_servers, [pds.publicUrl]);
    const jwks = (await (await fetch(local('/oauth/jwks'))).json()) as { keys: JWK[] };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.d, undefined, 'no private part');
  });

  it('asks for a nonce when a proof has none, or a stale one', async () => {
    const missing = await post('/oauth/par', { client_id: clientId }, await proof(key, 'POST', endpoint('/oauth/par')));
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error, 'use_dpop_nonce');
    assert.ok(nonce, 'the answer carries a DPoP-Nonce');
    const stale = await post(
      '/oauth/par',
      { client_id: clientId },
      await proof(key, 'POST', endpoint('/oauth/par'), { nonce: 'c3RhbGUtbm9uY2U' }),
    );
    assert.equal(stale.body.error, 'use_dpop_nonce');
  });

  it('refuses a redirect URI the client did not register, and PKCE other than S256', async () => {
    const res = await par({ redirect_uri: `${clientBase}/elsewhere` });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'invalid_request');
    assert.match(res.body.error_description!, /not one the client registered/);
    const plain = await par({ code_challenge_method: 'plain' });
    assert.equal(plain.body.error, 'invalid_request');
    const scope = await par({ scope: 'atproto transition:chat.bsky' });
    assert.equal(scope.body.error, 'invalid_scope');
  });

  it('refuses client metadata that does not name its own URL, and internal addresses', async () => {
    const liar = await par({ client_id: `${clientBase}/liar.json` });
    assert.equal(liar.status, 400);
    assert.equal(liar.body.error, 'invalid_client_metadata');
    assert.match(liar.body.error_description!, /not the URL it was fetched from/);
    for (const internal of [
      'https://169.254.169.254/latest/meta-data.json',
      'https://10.1.2.3/client.json',
      'https://[fd00::1]/c.json',
    ]) {
      const res = await par({ client_id: internal });
      assert.equal(res.body.error, 'invalid_client_metadata', internal);
      assert.match(res.body.error_description!, /private, link-local or reserved/);
    }
  });

  it('in production, refuses client metadata on loopback without sending a request', async () => {
    let requests = 0;
    const counting = createServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => counting.listen(0, '127.0.0.1', resolve));
    const port = (counting.address() as AddressInfo).port;
    const upstream = new Upstream({ headersTimeoutMs: 1000, bodyTimeoutMs: 1000, policy: { allowLoopback: false } });
    try {
      const resolver = new ClientResolver(upstream);
      for (const id of [
        `http://127.0.0.1:${port}/client.json`,
        `https://127.0.0.1:${port}/client.json`,
        'https://localhost/c.json',
      ]) {
        await assert.rejects(resolver.resolve(id), (err: { error?: string; message: string }) => {
          assert.equal(err.error, 'invalid_client_metadata');
          return true;
        });
      }
      assert.equal(requests, 0);
    } finally {
      upstream.close();
      counting.close();
    }
  });

  it('refuses a wrong PKCE verifier, then a reused code, revoking what the code gave', async () => {
    const { body, verifier } = await par();
    const code = await approve(body.request_uri!);
    const wrong = await exchange(code, randomBytes(32).toString('base64url'));
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error, 'invalid_grant');
    assert.match(wrong.body.error_description!, /PKCE/);
    // The code was spent by the failed attempt: it never works again.
    const again = await exchange(code, verifier);
    assert.equal(again.body.error, 'invalid_grant');

    const second = await par();
    const code2 = await approve(second.body.request_uri!);
    const ok = await exchange(code2, second.verifier);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.token_type, 'DPoP');
    assert.equal(ok.body.sub, did);
    const reused = await exchange(code2, second.verifier);
    assert.equal(reused.body.error, 'invalid_grant');
    const call = await xrpc(
      'com.atproto.server.getSession',
      ok.body.access_token!,
      await proof(key, 'GET', endpoint('/xrpc/com.atproto.server.getSession'), {
        nonce,
        ath: b64sha(ok.body.access_token!),
      }),
    );
    assert.equal(call.status, 401, 'tokens from a code shown twice are revoked');
  });

  it('refuses an expired code', async () => {
    const { body, verifier } = await par();
    const code = await approve(body.request_uri!);
    pds.ctx.accountManager.db
      .prepare('UPDATE oauth_request SET code_expires_at = ? WHERE code_hash IS NOT NULL')
      .run(1);
    const res = await exchange(code, verifier);
    assert.equal(res.body.error, 'invalid_grant');
    assert.match(res.body.error_description!, /expired/);
  });

  it('refuses a replayed proof and a proof for another URL or method at the token endpoint', async () => {
    const { body, verifier } = await par();
    const code = await approve(body.request_uri!);
    const used = await proof(key, 'POST', endpoint('/oauth/token'), { nonce });
    const params = {
      grant_type: 'authorization_code',
      client_id: clientId,
      redirect_uri: redirectUri,
      code,
      code_verifier: 'x',
    };
    await post('/oauth/token', params, used);
    const replay = await post('/oauth/token', params, used);
    assert.equal(replay.body.error, 'invalid_dpop_proof');
    assert.match(replay.body.error_description!, /already used/);
    const otherUrl = await post('/oauth/token', params, await proof(key, 'POST', endpoint('/oauth/par'), { nonce }));
    assert.equal(otherUrl.body.error, 'invalid_dpop_proof');
    assert.match(otherUrl.body.error_description!, /htu/);
    const otherMethod = await post(
      '/oauth/token',
      params,
      await proof(key, 'GET', endpoint('/oauth/token'), { nonce }),
    );
    assert.equal(otherMethod.body.error, 'invalid_dpop_proof');
    assert.match(otherMethod.body.error_description!, /htm/);
    void verifier;
  });

  it('checks DPoP calls at the resource: proof, nonce, ath, key, replay; refresh rotates and detects reuse', async () => {
    const t = await tokens();
    const at = t.access_token!;
    const url = endpoint('/xrpc/com.atproto.server.getSession');
    const good = await proof(key, 'GET', url, { nonce, ath: b64sha(at) });
    const ok = await xrpc('com.atproto.server.getSession', at, good);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.did, did);

    const replay = await xrpc('com.atproto.server.getSession', at, good);
    assert.equal(replay.status, 401);
    assert.equal(replay.body.error, 'invalid_dpop_proof');
    assert.match(replay.www!, /^DPoP error="invalid_dpop_proof"/);

    const stale = await xrpc(
      'com.atproto.server.getSession',
      at,
      await proof(key, 'GET', url, { nonce: 'old', ath: b64sha(at) }),
    );
    assert.equal(stale.status, 401);
    assert.equal(stale.body.error, 'use_dpop_nonce');
    assert.match(stale.www!, /use_dpop_nonce/);

    const wrongMethod = await xrpc(
      'com.atproto.repo.createRecord',
      at,
      await proof(key, 'GET', endpoint('/xrpc/com.atproto.repo.createRecord'), { nonce, ath: b64sha(at) }),
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          repo: did,
          collection: 'app.bsky.feed.post',
          record: { text: 'x', createdAt: new Date().toISOString() },
        }),
      },
    );
    assert.equal(wrongMethod.body.error, 'invalid_dpop_proof');
    const records = await fetch(local(`/xrpc/com.atproto.repo.listRecords?repo=${did}&collection=app.bsky.feed.post`));
    assert.deepEqual(((await records.json()) as { records: unknown[] }).records, [], 'nothing was written');

    const noAth = await xrpc('com.atproto.server.getSession', at, await proof(key, 'GET', url, { nonce }));
    assert.equal(noAth.body.error, 'invalid_dpop_proof');
    const otherKey = await xrpc(
      'com.atproto.server.getSession',
      at,
      await proof(await newDpopKey(), 'GET', url, { nonce, ath: b64sha(at) }),
    );
    assert.equal(otherKey.body.error, 'invalid_dpop_proof');

    const refresh = (rt: string, k = key) =>
      proof(k, 'POST', endpoint('/oauth/token'), { nonce }).then((p) =>
        post('/oauth/token', { grant_type: 'refresh_token', client_id: clientId, refresh_token: rt }, p),
      );
    const otherHolder = await refresh(t.refresh_token!, await newDpopKey());
    assert.equal(otherHolder.body.error, 'invalid_grant', 'a refresh token works only with its key');
    const rotated = await refresh(t.refresh_token!);
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.refresh_token, t.refresh_token);
    const oldAccess = await xrpc(
      'com.atproto.server.getSession',
      at,
      await proof(key, 'GET', url, { nonce, ath: b64sha(at) }),
    );
    assert.equal(oldAccess.status, 401, 'the access token from before the refresh is retired');
    const reuse = await refresh(t.refresh_token!);
    assert.equal(reuse.body.error, 'invalid_grant');
    const after = await refresh(rotated.body.refresh_token!);
    assert.equal(after.body.error, 'invalid_grant', 'a replayed refresh token ends the session');
  });

  it('refuses what OAuth tokens may never do', async () => {
    const t = await tokens();
    const at = t.access_token!;
    const res = await xrpc(
      'com.atproto.server.createAppPassword',
      at,
      await proof(key, 'POST', endpoint('/xrpc/com.atproto.server.createAppPassword'), { nonce, ath: b64sha(at) }),
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'sneaky' }) },
    );
    assert.equal(res.status, 403);
    const revoke = await post('/oauth/revoke', { client_id: clientId, token: t.refresh_token! });
    assert.equal(revoke.status, 200);
    const gone = await xrpc(
      'com.atproto.server.getSession',
      at,
      await proof(key, 'GET', endpoint('/xrpc/com.atproto.server.getSession'), {
        nonce,
        ath: b64sha(at),
      }),
    );
    assert.equal(gone.status, 401);
    assert.equal(gone.body.error, 'invalid_token');
  });

  it('authenticates a confidential client with private_key_jwt, once per assertion', async () => {
    const confidentialId = `${clientBase}/confidential.json`;
    const assertion = (jti = randomBytes(12).toString('base64url')) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(confidentialId)
        .setSubject(confidentialId)
        .setAudience(pds.publicUrl)
        .setJti(jti)
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(clientKey);
    const auth = async () => ({
      client_id: confidentialId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion(),
    });
    const none = await par({ client_id: confidentialId });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'invalid_client');
    const forged = await generateKeyPair('ES256');
    const badSig = await par({
      client_id: confidentialId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(confidentialId)
        .setSubject(confidentialId)
        .setAudience(pds.publicUrl)
        .setJti('forged-assertion')
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(forged.privateKey),
    });
    assert.equal(badSig.body.error, 'invalid_client');

    const reused = await auth();
    const { body, verifier } = await par(reused);
    assert.equal(body.request_uri?.startsWith('urn:ietf:params:oauth:request_uri:'), true, JSON.stringify(body));
    const code = await approve(body.request_uri!, confidentialId);
    const replayed = await post(
      '/oauth/token',
      { grant_type: 'authorization_code', redirect_uri: redirectUri, code, code_verifier: verifier, ...reused },
      await proof(key, 'POST', endpoint('/oauth/token'), { nonce }),
    );
    assert.equal(replayed.body.error, 'invalid_client', 'an assertion is good once');
    const ok = await post(
      '/oauth/token',
      { grant_type: 'authorization_code', redirect_uri: redirectUri, code, code_verifier: verifier, ...(await auth()) },
      await proof(key, 'POST', endpoint('/oauth/token'), { nonce }),
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.sub, did);
  });

  it('asks for the emailed code when the account wants one', async () => {
    pds.ctx.accountManager.updateEmail(did, 'bob@example.com', true);
    try {
      const { body } = await par();
      const requestUri = body.request_uri!;
      const page = await (
        await fetch(local(`/oauth/authorize?${new URLSearchParams({ request_uri: requestUri })}`))
      ).text();
      const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
      const signIn = (extra: Record<string, string>) =>
        fetch(local('/oauth/authorize/sign-in'), {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            request_uri: requestUri,
            csrf,
            handle: 'bob.test',
            password: PASSWORD,
            ...extra,
          }),
        });
      const asked = await signIn({});
      assert.equal(asked.status, 401);
      const askedPage = await asked.text();
      assert.match(askedPage, /<label for="code">Confirmation code<\/label>/);
      assert.equal(asked.headers.get('set-cookie'), null, 'no session before the code');
      const wrong = await signIn({ code: 'AAAAA-BBBBB' });
      assert.equal(wrong.status, 401);
      const code = outboxToken(pds.ctx.mailer.outboxPath, 'bob@example.com');
      assert.ok(code, 'a code was mailed');
      keep(code);
      const ok = await signIn({ code: code! });
      assert.equal(ok.status, 303);
      assert.match(ok.headers.get('set-cookie') ?? '', /^portage_oauth=/);
    } finally {
      pds.ctx.accountManager.updateEmail(did, 'bob@example.com', false);
    }
  });

  it('refuses the tokens of a taken-down account', async () => {
    const t = await tokens();
    const at = t.access_token!;
    const call = async () =>
      xrpc(
        'com.atproto.repo.createRecord',
        at,
        await proof(key, 'POST', endpoint('/xrpc/com.atproto.repo.createRecord'), { nonce, ath: b64sha(at) }),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            repo: did,
            collection: 'app.bsky.feed.post',
            record: { $type: 'app.bsky.feed.post', text: 'hi', createdAt: new Date().toISOString() },
          }),
        },
      );
    pds.ctx.accountManager.setTakedown(did, 'takedown-1');
    try {
      const refused = await call();
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error, 'AccountTakedown');
    } finally {
      pds.ctx.accountManager.setTakedown(did, null);
    }
    const allowed = await call();
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
  });

  it('logs no password, code, token or proof', () => {
    assert.match(logText, /"path":"\/oauth\/token"/, 'the requests were logged');
    for (const secret of secrets) assert.ok(!logText.includes(secret), 'a credential reached the log');
  });
});
