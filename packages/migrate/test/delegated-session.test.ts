/**
 * The old server's session when the caller signed in with OAuth: every request goes through the
 * caller's fetch (which adds its DPoP authorization), none carries a Bearer token of the engine's,
 * the account is read with getSession, and a session for another DID is refused before any call.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MigrationError } from '../src/errors.ts';
import { PdsSession } from '../src/session.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';
let server: Server;
let base: string;
const seen: { path: string; authorization?: string }[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push({ path: new URL(req.url!, 'http://x').pathname, authorization: req.headers.authorization });
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
});
