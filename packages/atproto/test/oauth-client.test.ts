/**
 * The browser OAuth client's pieces that can fail, against a strict authorization and resource
 * server on loopback that this file controls: the DPoP proof (checked with jose), PKCE, the nonce
 * a server demands (PAR, token and PDS alike), the refresh of an expired token, and the checks of
 * the authorization answer (state, iss, the account it is for) and of the server's metadata.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { beginAuthorization, type ClientIdentity, completeAuthorization } from '../src/oauth/client.ts';
import { DpopKey } from '../src/oauth/dpop.ts';
import { OAuthError } from '../src/oauth/errors.ts';
import { discoverAuthorizationServer } from '../src/oauth/metadata.ts';
import { MIGRATION_SCOPE } from '../src/oauth/migration-scope.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';
const b64url = (bytes: Buffer) => bytes.toString('base64url');
const sha256 = (text: string) => b64url(createHash('sha256').update(text).digest());

interface Proof {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

/** Verifies a DPoP proof with jose against the key in its own header; throws when it does not verify. */
async function readProof(jwt: string): Promise<Proof> {
  const header = decodeProtectedHeader(jwt) as Record<string, unknown>;
  const key = await importJWK(header.jwk as Parameters<typeof importJWK>[0], 'ES256');
  const { payload } = await jwtVerify(jwt, key, { typ: 'dpop+jwt', algorithms: ['ES256'] });
  return { header, payload: payload as Record<string, unknown> };
}

/** The server: what it demands and what it answers, changed by each test. */
const world = {
  issuer: '',
  metadata: {} as Record<string, unknown>,
  nonce: 'nonce-1',
  sub: DID,
  parBodies: [] as URLSearchParams[],
  tokenBodies: [] as URLSearchParams[],
  proofs: [] as Proof[],
  access: 'access-1',
  /** Access tokens the PDS takes as expired. */
  expired: new Set<string>(),
  pdsCalls: 0,
  revoked: [] as string[],
};

let server: Server;
let base: string;

async function handle(req: IncomingMessage, body: string, res: ServerResponse): Promise<void> {
  const url = new URL(req.url!, base);
  const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', 'dpop-nonce': world.nonce, ...headers });
    res.end(JSON.stringify(value));
  };
  if (url.pathname === '/.well-known/oauth-protected-resource') {
    return json(200, { resource: base, authorization_servers: [world.issuer] });
  }
  if (url.pathname === '/.well-known/oauth-authorization-server') return json(200, world.metadata);
  const dpop = req.headers.dpop;
  const proof = typeof dpop === 'string' ? await readProof(dpop) : undefined;
  if (proof) world.proofs.push(proof);
  if (url.pathname === '/oauth/par' || url.pathname === '/oauth/token') {
    if (!proof) return json(400, { error: 'invalid_dpop_proof' });
    if (proof.payload.nonce !== world.nonce) return json(400, { error: 'use_dpop_nonce' });
    const form = new URLSearchParams(body);
    if (url.pathname === '/oauth/par') {
      world.parBodies.push(form);
      return json(201, { request_uri: 'urn:ietf:params:oauth:request_uri:req-1', expires_in: 300 });
    }
    world.tokenBodies.push(form);
    if (form.get('grant_type') === 'authorization_code') {
      const par = world.parBodies.at(-1)!;
      if (sha256(form.get('code_verifier') ?? '') !== par.get('code_challenge')) {
        return json(400, { error: 'invalid_grant', error_description: 'PKCE mismatch' });
      }
    }
    world.access = `access-${world.tokenBodies.length}`;
    return json(200, {
      access_token: world.access,
      token_type: 'DPoP',
      refresh_token: `refresh-${world.tokenBodies.length}`,
      scope: MIGRATION_SCOPE,
      sub: world.sub,
      expires_in: 3600,
    });
  }
  if (url.pathname === '/oauth/revoke') {
    world.revoked.push(new URLSearchParams(body).get('token') ?? '');
    return json(200, {});
  }
  if (url.pathname.startsWith('/xrpc/')) {
    world.pdsCalls++;
    const token = /^DPoP (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !proof || proof.payload.ath !== sha256(token)) return json(401, { error: 'InvalidToken' });
    if (proof.payload.nonce !== world.nonce) {
      return json(401, { error: 'use_dpop_nonce' }, { 'www-authenticate': 'DPoP error="use_dpop_nonce"' });
    }
    if (world.expired.has(token)) {
      return json(401, { error: 'ExpiredToken' }, { 'www-authenticate': 'DPoP error="invalid_token"' });
    }
    return json(200, { did: DID, handle: 'alice.test', body });
  }
  json(404, { error: 'not_found' });
}

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => void handle(req, body, res).catch((err: unknown) => res.writeHead(500).end(String(err))));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  world.issuer = base;
  world.metadata = {
    issuer: base,
    authorization_endpoint: `${base}/oauth/authorize`,
    pushed_authorization_request_endpoint: `${base}/oauth/par`,
    token_endpoint: `${base}/oauth/token`,
    revocation_endpoint: `${base}/oauth/revoke`,
    dpop_signing_alg_values_supported: ['ES256'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['atproto', 'transition:generic'],
    authorization_response_iss_parameter_supported: true,
  };
  world.nonce = 'nonce-1';
  world.sub = DID;
  world.parBodies = [];
  world.tokenBodies = [];
  world.proofs = [];
  world.expired = new Set();
  world.pdsCalls = 0;
  world.revoked = [];
});

const client = (): ClientIdentity => ({
  clientId: `http://localhost?redirect_uri=${encodeURIComponent(`http://127.0.0.1:9/migrate/`)}`,
  redirectUri: 'http://127.0.0.1:9/migrate/',
  scope: MIGRATION_SCOPE,
});

/** Discovery and PAR, then the answer the authorization page would send back. */
async function authorize(answer: Record<string, string> = {}) {
  const server = await discoverAuthorizationServer(base);
  const pending = await beginAuthorization({ server, client: client(), did: DID, loginHint: 'alice.test' });
  const params = new URLSearchParams({ state: pending.state, iss: server.issuer, code: 'code-1', ...answer });
  return { pending, params };
}

describe('DPoP proofs', () => {
  it('are ES256 dpop+jwt with only the public key, bound to method, URL, nonce and token', async () => {
    const key = await DpopKey.generate();
    const jwt = await key.proof({
      htm: 'get',
      htu: 'https://pds.example/xrpc/a.b.c?x=1#frag',
      nonce: 'n-1',
      accessToken: 'token-1',
    });
    const { header, payload } = await readProof(jwt);
    assert.equal(header.typ, 'dpop+jwt');
    assert.equal(header.alg, 'ES256');
    assert.deepEqual(Object.keys(header.jwk as object).sort(), ['crv', 'kty', 'x', 'y'], 'no private part');
    assert.equal(payload.htm, 'GET');
    assert.equal(payload.htu, 'https://pds.example/xrpc/a.b.c', 'no query or fragment');
    assert.equal(payload.nonce, 'n-1');
    assert.equal(payload.ath, sha256('token-1'));
    assert.ok(Math.abs((payload.iat as number) - Date.now() / 1000) < 5);
    const again = await readProof(await key.proof({ htm: 'POST', htu: 'https://as.example/oauth/token' }));
    assert.notEqual(again.payload.jti, payload.jti, 'each proof is new');
    assert.equal(again.payload.nonce, undefined);
    assert.equal(again.payload.ath, undefined);
  });
});

describe('the authorization code flow', () => {
  it('pushes the request with PKCE, retries for the nonce, and gets DPoP tokens for the DID', async () => {
    world.nonce = 'nonce-par';
    const { pending, params } = await authorize();
    const par = world.parBodies[0]!;
    assert.equal(par.get('code_challenge_method'), 'S256');
    assert.equal(par.get('scope'), MIGRATION_SCOPE);
    assert.equal(par.get('login_hint'), 'alice.test');
    assert.equal(par.get('client_id'), client().clientId);
    assert.equal(world.proofs.length, 2, 'the PAR was sent again with the nonce the server demanded');
    const page = new URL(pending.url);
    assert.equal(page.origin + page.pathname, `${base}/oauth/authorize`);
    assert.equal(page.searchParams.get('request_uri'), 'urn:ietf:params:oauth:request_uri:req-1');

    world.nonce = 'nonce-token';
    const session = await completeAuthorization(pending, params);
    assert.equal(session.did, DID);
    assert.equal(world.tokenBodies[0]!.get('code_verifier')?.length, 64, 'the verifier went with the code');
    const jkts = new Set(world.proofs.map((p) => JSON.stringify(p.header.jwk)));
    assert.equal(jkts.size, 1, 'one DPoP key for the whole sign-in');

    // At the PDS: a nonce demand is answered by sending again, an expired token by a refresh.
    world.nonce = 'nonce-pds';
    const before = world.pdsCalls;
    const res = await session.fetch(`${base}/xrpc/com.atproto.server.getSession`);
    assert.equal(res.status, 200);
    assert.equal(world.pdsCalls - before, 2);
    world.expired.add(world.access);
    const posted = await session.fetch(`${base}/xrpc/com.atproto.identity.signPlcOperation`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"token":"T"}',
    });
    assert.equal(posted.status, 200);
    assert.equal(((await posted.json()) as { body: string }).body, '{"token":"T"}', 'the body was sent again whole');
    assert.equal(world.tokenBodies.at(-1)!.get('grant_type'), 'refresh_token');
    assert.equal(world.tokenBodies.at(-1)!.get('refresh_token'), 'refresh-1');
  });

  it('refuses an answer for another state or issuer, a refused consent, and another account', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ state: 'not-ours' }, 'invalid-response'],
      [{ iss: 'https://elsewhere.example' }, 'invalid-response'],
      [{ error: 'access_denied', error_description: 'The user denied access' }, 'access-denied'],
    ];
    for (const [answer, failure] of cases) {
      const { pending, params } = await authorize(answer);
      if (answer.error) params.delete('code');
      await assert.rejects(completeAuthorization(pending, params), (err: unknown) => {
        assert.ok(err instanceof OAuthError);
        assert.equal(err.failure, failure, JSON.stringify(answer));
        return true;
      });
    }
    assert.equal(world.tokenBodies.length, 0, 'no code was exchanged');
    world.sub = 'did:plc:someoneelsesomeoneelse00';
    const { pending, params } = await authorize();
    await assert.rejects(completeAuthorization(pending, params), (err: unknown) => {
      assert.ok(err instanceof OAuthError);
      assert.equal(err.failure, 'wrong-account');
      assert.match(err.message, /not for did:plc:abcdefghijklmnopqrstuvwx/);
      return true;
    });
    assert.deepEqual(world.revoked, ['refresh-1'], "the other account's tokens were revoked");
  });
});

describe('discovery', () => {
  it('refuses an issuer that names itself otherwise, and one without DPoP ES256', async () => {
    world.metadata.issuer = 'https://other.example';
    await assert.rejects(discoverAuthorizationServer(base), { failure: 'invalid-response' });
    world.metadata.issuer = base;
    world.metadata.dpop_signing_alg_values_supported = ['RS256'];
    await assert.rejects(discoverAuthorizationServer(base), { failure: 'unsupported' });
  });

  it('says unreachable for a server that does not answer', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(discoverAuthorizationServer(`http://127.0.0.1:${port}`), { failure: 'unreachable' });
  });
});
