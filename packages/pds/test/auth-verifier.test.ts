import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Nsid } from '@atcute/lexicons';
import * as v from '@atcute/lexicons/validations';
import { SignJWT } from 'jose';
import { AuthScope } from '../src/auth/scopes.ts';
import { jwtKeyFromSecret } from '../src/auth/tokens.ts';
import { createRequestHandler, listen, type RunningServer } from '../src/server.ts';
import { type XrpcMethod, xrpcMethod } from '../src/xrpc/handler.ts';
import { startTestPds, type TestPds } from './harness.ts';

const whoami = (nsid: string, auth: 'access' | 'accessFull' | 'refresh' | 'admin' | 'optionalAccess'): XrpcMethod =>
  xrpcMethod(v.query(nsid as Nsid, { params: null, output: null }), {
    auth,
    async handler({ auth }) {
      return { json: auth };
    },
  });

const methods = [
  whoami('test.access', 'access'),
  whoami('test.full', 'accessFull'),
  whoami('test.refresh', 'refresh'),
  whoami('test.admin', 'admin'),
  whoami('test.optional', 'optionalAccess'),
];

const DID = 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa';

describe('auth verifier', () => {
  let pds: TestPds;
  let server: RunningServer;
  const call = (nsid: string, authorization?: string) =>
    fetch(`${server.localUrl}/xrpc/${nsid}`, { headers: authorization ? { authorization } : {} });
  before(async () => {
    pds = await startTestPds();
    server = await listen(createRequestHandler(pds.ctx, methods), 0, '127.0.0.1');
  });
  after(async () => {
    await server.close();
    await pds.close();
  });

  it('accepts a valid access token and reports its DID and scope', async () => {
    const token = await pds.ctx.tokens.createAccessToken(DID, AuthScope.Access);
    const res = await call('test.access', `Bearer ${token}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { type: 'access', did: DID, scope: AuthScope.Access });
  });

  it('rejects a missing token with 401 AuthMissing', async () => {
    const res = await call('test.access');
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, 'AuthMissing');
  });

  it('rejects a tampered token with 400 InvalidToken', async () => {
    const token = await pds.ctx.tokens.createAccessToken(DID, AuthScope.Access);
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.sub = 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb';
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    const res = await call('test.access', `Bearer ${forged}`);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'InvalidToken');
  });

  it('rejects a token signed with another secret', async () => {
    const token = await new SignJWT({ scope: AuthScope.Access })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setSubject(DID)
      .setAudience(pds.ctx.config.serviceDid)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(jwtKeyFromSecret('not-the-secret'));
    const res = await call('test.access', `Bearer ${token}`);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'InvalidToken');
  });

  it('rejects an expired token with 400 ExpiredToken', async () => {
    const longAgo = Math.floor(Date.now() / 1000) - 3 * 60 * 60;
    const token = await pds.ctx.tokens.createAccessToken(DID, AuthScope.Access, longAgo);
    const res = await call('test.access', `Bearer ${token}`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'ExpiredToken', message: 'Token has expired' });
  });

  it('does not accept a refresh token as an access token, nor the reverse', async () => {
    const refresh = await pds.ctx.tokens.createRefreshToken(DID);
    const asAccess = await call('test.access', `Bearer ${refresh.jwt}`);
    assert.equal(asAccess.status, 400);
    assert.equal((await asAccess.json()).error, 'InvalidToken');
    const access = await pds.ctx.tokens.createAccessToken(DID, AuthScope.Access);
    const asRefresh = await call('test.refresh', `Bearer ${access}`);
    assert.equal(asRefresh.status, 400);
    const ok = await call('test.refresh', `Bearer ${refresh.jwt}`);
    assert.deepEqual(await ok.json(), { type: 'refresh', did: DID, tokenId: refresh.jti });
  });

  it('keeps app-password sessions out of full-access methods', async () => {
    const appPass = await pds.ctx.tokens.createAccessToken(DID, AuthScope.AppPass);
    assert.equal((await call('test.access', `Bearer ${appPass}`)).status, 200);
    const full = await call('test.full', `Bearer ${appPass}`);
    assert.equal(full.status, 400);
    assert.deepEqual(await full.json(), { error: 'InvalidToken', message: 'Bad token scope' });
  });

  it('keeps taken-down sessions out of ordinary methods', async () => {
    const takendown = await pds.ctx.tokens.createAccessToken(DID, AuthScope.Takendown);
    assert.equal((await call('test.access', `Bearer ${takendown}`)).status, 400);
  });

  it('checks the admin password with HTTP Basic', async () => {
    const good = Buffer.from(`admin:${pds.ctx.config.adminPassword}`).toString('base64');
    assert.equal((await call('test.admin', `Basic ${good}`)).status, 200);
    const bad = Buffer.from('admin:wrong').toString('base64');
    const res = await call('test.admin', `Basic ${bad}`);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, 'AuthenticationRequired');
    assert.equal((await call('test.admin')).status, 401);
  });

  it('treats optional auth as anonymous without a header, verified with one', async () => {
    assert.deepEqual(await (await call('test.optional')).json(), { type: 'none' });
    assert.equal((await call('test.optional', 'Bearer garbage')).status, 400);
  });

  it('rejects malformed authorization headers', async () => {
    const res = await call('test.access', 'Bearer');
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'InvalidToken');
    const odd = await call('test.access', 'Token abc');
    assert.equal(odd.status, 400);
  });
});

describe('logging out with an expired refresh token', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds();
  });
  after(async () => {
    await pds.close();
  });

  it('is accepted by deleteSession, while a forged one is not', async () => {
    const longAgo = Math.floor(Date.now() / 1000) - 100 * 24 * 60 * 60;
    const expired = await pds.ctx.tokens.createRefreshToken(DID, undefined, longAgo);
    const logout = (token: string) =>
      fetch(`${pds.url}/xrpc/com.atproto.server.deleteSession`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
    assert.equal((await logout(expired.jwt)).status, 200);
    const forged = await new SignJWT({ scope: AuthScope.Refresh })
      .setProtectedHeader({ alg: 'HS256', typ: 'refresh+jwt' })
      .setSubject(DID)
      .setAudience(pds.ctx.config.serviceDid)
      .setJti('x')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(jwtKeyFromSecret('not-the-secret'));
    const res = await logout(forged);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'InvalidToken');
    assert.equal((await fetch(`${pds.url}/xrpc/com.atproto.server.deleteSession`, { method: 'POST' })).status, 401);
  });
});
