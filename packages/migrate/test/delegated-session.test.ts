/**
 * The old server's session when the caller signed in with OAuth: every request goes through the
 * caller's fetch (which adds its DPoP authorization), none carries a Bearer token of the engine's,
 * the account is read with getSession, and a session for another DID is refused before any call.
 * A session the server stops honouring mid-move stops the run at once, asking to sign in again.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OAuthError } from '@portage/atproto/oauth/errors';
import { MigrationError } from '../src/errors.ts';
import { PdsSession } from '../src/session.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';
let server: Server;
let base: string;
const seen: { path: string; authorization?: string }[] = [];
/** Whether the server still honours the caller's token. */
let honoured = true;

before(async () => {
  server = createServer((req, res) => {
    seen.push({ path: new URL(req.url!, 'http://x').pathname, authorization: req.headers.authorization });
    if (!honoured) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'DPoP error="invalid_token"' });
      res.end(JSON.stringify({ error: 'InvalidToken', message: 'the token was revoked' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ did: DID, handle: 'alice.test', active: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('a delegated (OAuth) session', () => {
  it("sends every call through the caller's fetch and reads the account with getSession", async () => {
    let delegatedCalls = 0;
    const session = new PdsSession(base, DID);
    assert.equal(session.signedIn, false);
    const info = await session.delegate({
      did: DID,
      fetch: (input, init) => {
        delegatedCalls++;
        const headers = new Headers(init?.headers);
        headers.set('authorization', 'DPoP token-from-the-caller');
        return fetch(input, { ...init, headers });
      },
    });
    assert.equal(info.handle, 'alice.test');
    assert.equal(session.signedIn, true);
    assert.equal(session.delegated, true);
    assert.equal(session.accessJwt, undefined, 'the engine holds no token of its own');
    await session.query('com.atproto.server.checkAccountStatus');
    await session.procedure('com.atproto.identity.requestPlcOperationSignature');
    assert.equal(delegatedCalls, 3);
    assert.deepEqual(
      seen.map((s) => [s.path, s.authorization]),
      [
        ['/xrpc/com.atproto.server.getSession', 'DPoP token-from-the-caller'],
        ['/xrpc/com.atproto.server.checkAccountStatus', 'DPoP token-from-the-caller'],
        ['/xrpc/com.atproto.identity.requestPlcOperationSignature', 'DPoP token-from-the-caller'],
      ],
    );
  });

  it('refuses a session for another account before sending anything', async () => {
    seen.length = 0;
    const session = new PdsSession(base, DID);
    await assert.rejects(
      session.delegate({ did: 'did:plc:someoneelsesomeoneelse00', fetch }),
      (err: unknown) => err instanceof MigrationError && err.code === 'DidMismatch',
    );
    assert.equal(seen.length, 0);
    assert.equal(session.signedIn, false);
  });

  /** A delegated session that signed in, then loses the server's trust in the way `end` says. */
  async function endedMidway(end: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>) {
    honoured = true;
    let ended = false;
    const session = new PdsSession(base, DID);
    await session.delegate({ did: DID, fetch: (input, init) => (ended ? end(input, init) : fetch(input, init)) });
    seen.length = 0;
    ended = true;
    return session;
  }

  function isSignedOut(err: unknown): boolean {
    assert.ok(err instanceof MigrationError, String(err));
    assert.equal(err.code, 'SignedOut');
    assert.deepEqual(err.nextStep, { kind: 'need-input', field: 'oldPassword', reason: 'signed-out' });
    return true;
  }

  it('a token the server no longer accepts stops the call at once, asking to sign in again', async () => {
    const session = await endedMidway((input, init) => {
      honoured = false;
      return fetch(input, init);
    });
    await assert.rejects(session.procedure('com.atproto.identity.requestPlcOperationSignature'), isSignedOut);
    assert.equal(seen.length, 1, 'not retried: another try cannot help');
    honoured = true;
  });

  it('a refresh the authorization server refused stops the call at once, asking to sign in again', async () => {
    let tries = 0;
    const session = await endedMidway(() => {
      tries++;
      throw new OAuthError('refused', 'the token endpoint refused: invalid_grant', 'invalid_grant');
    });
    await assert.rejects(session.query('app.bsky.actor.getPreferences'), (err: unknown) => {
      isSignedOut(err);
      assert.match(
        (err as Error).message,
        /no longer accepts the sign-in \(the token endpoint refused: invalid_grant\)/,
      );
      return true;
    });
    assert.equal(tries, 1, 'not retried');
  });

  it('a network failure on the way is retried as before', async () => {
    let tries = 0;
    const session = await endedMidway((input, init) => {
      tries++;
      if (tries === 1) throw new TypeError('fetch failed');
      return fetch(input, init);
    });
    await session.query('com.atproto.server.checkAccountStatus', undefined, { baseDelayMs: 1 });
    assert.equal(tries, 2);
  });
});
