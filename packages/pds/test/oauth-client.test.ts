/**
 * OAuth end to end with the reference client (@atproto/oauth-client-node) against Portage, and
 * the sign-in and consent pages driven in Chromium: PAR, sign in, Authorize, code exchange,
 * createRecord and a forwarded getTimeline with DPoP, refresh, revoke, then the revoked tokens
 * refused. A narrower grant is refused the write it does not cover and allowed the rest. The
 * AppView is a small XRPC service on loopback that records what reaches it (the reference
 * AppView needs PostgreSQL and takes long to start; what is tested here is the PDS's check and
 * its service JWT).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from '@atproto/api';
import { NodeOAuthClient, type NodeSavedSession, type NodeSavedState } from '@atproto/oauth-client-node';
import type { Browser, Page } from 'playwright-core';
import { checkAccessible, launchChromium, skipWithoutChromium } from '../../../test/support/browser.ts';
import { startTestPds, type TestPds } from './harness.ts';

const SHOTS = join(import.meta.dirname, '..', 'test-output');
const APPVIEW_DID = 'did:web:appview.test';
const PASSWORD = 'correct horse battery staple';

interface Seen {
  url: string;
  authorization: string | undefined;
}

class MemoryStore<T> {
  readonly map = new Map<string, T>();
  async get(key: string) {
    return this.map.get(key);
  }
  async set(key: string, value: T) {
    this.map.set(key, value);
  }
  async del(key: string) {
    this.map.delete(key);
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function jwtPayload(header: string | undefined): Record<string, unknown> {
  assert.ok(header?.startsWith('Bearer '), 'the AppView gets a service JWT');
  assert.ok(header);
  return JSON.parse(Buffer.from(header.slice(7).split('.')[1]!, 'base64url').toString('utf8'));
}

describe('OAuth with the reference client', { skip: skipWithoutChromium('the OAuth page tests') }, () => {
  let pds: TestPds;
  let appView: Server;
  let callback: Server;
  let callbackUrl: string;
  let browser: Browser;
  let page: Page;
  let did: string;
  const seen: Seen[] = [];
  const locks = new Map<string, Promise<unknown>>();

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    appView = createServer((req: IncomingMessage, res) => {
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ feed: [] }));
    });
    const appViewPort = await listen(appView);
    callback = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html lang="en"><title>Signed in</title><p>You can close this tab.</p></html>');
    });
    callbackUrl = `http://127.0.0.1:${await listen(callback)}/callback`;
    pds = await startTestPds({
      env: { PDS_BSKY_APP_VIEW_URL: `http://127.0.0.1:${appViewPort}`, PDS_BSKY_APP_VIEW_DID: APPVIEW_DID },
    });
    const created = await fetch(`${pds.url}/xrpc/com.atproto.server.createAccount`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD }),
    });
    assert.equal(created.status, 200);
    ({ did } = (await created.json()) as { did: string });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  });

  after(async () => {
    await browser?.close();
    await pds?.close();
    appView?.closeAllConnections();
    appView?.close();
    callback?.closeAllConnections();
    callback?.close();
  });

  /** A development client (http://localhost client_id) asking for `scope`. */
  function oauthClient(scope: string) {
    const clientId = `http://localhost?${new URLSearchParams({ redirect_uri: callbackUrl, scope })}`;
    const sessionStore = new MemoryStore<NodeSavedSession>();
    const client = new NodeOAuthClient({
      clientMetadata: {
        client_id: clientId,
        client_name: 'Test app',
        redirect_uris: [callbackUrl as `http://127.0.0.1:${string}`],
        scope,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        dpop_bound_access_tokens: true,
      },
      stateStore: new MemoryStore<NodeSavedState>(),
      sessionStore,
      allowHttp: true,
      // One process: refreshes of one session run one after another.
      requestLock: async <T>(name: string, fn: () => T | PromiseLike<T>): Promise<T> => {
        const previous = locks.get(name) ?? Promise.resolve();
        const run = previous.then(fn, fn);
        locks.set(
          name,
          run.catch(() => undefined),
        );
        return run;
      },
      plcDirectoryUrl: pds.plcUrl,
      handleResolver: pds.url,
    });
    return { client, sessionStore };
  }

  /** Opens the authorization URL, signs in when asked, agrees, and returns the callback's query. */
  async function authorizeInBrowser(url: URL, shots?: string): Promise<URLSearchParams> {
    await page.goto(url.href);
    if (await page.getByLabel('Password').count()) {
      assert.equal(await page.getByLabel('Handle').inputValue(), 'alice.test', 'login_hint fills the handle');
      if (shots) {
        await checkAccessible(page, 'the OAuth sign-in page');
        await page.screenshot({ path: join(SHOTS, `${shots}-sign-in.png`), fullPage: true });
      }
      await page.getByLabel('Password').fill('wrong password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').waitFor();
      assert.match(await page.getByRole('alert').innerText(), /do not match/);
      // The keyboard alone: type the password and press Enter.
      await page.getByLabel('Password').focus();
      await page.keyboard.type(PASSWORD);
      await page.keyboard.press('Enter');
    }
    await page.getByRole('button', { name: 'Authorize' }).waitFor();
    if (shots) {
      await checkAccessible(page, 'the OAuth consent page');
      await page.screenshot({ path: join(SHOTS, `${shots}-consent.png`), fullPage: true });
    }
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(callbackUrl)),
      page.getByRole('button', { name: 'Authorize' }).click(),
    ]);
    return new URL(page.url()).searchParams;
  }

  it('signs in, writes, reads through the AppView, refreshes, revokes', async () => {
    const { client, sessionStore } = oauthClient('atproto transition:generic');
    const url = await client.authorize('alice.test', { scope: 'atproto transition:generic' });
    assert.equal(url.origin, pds.publicUrl);
    const params = await authorizeInBrowser(url, 'oauth');
    assert.equal(params.get('iss'), pds.publicUrl);
    const { session } = await client.callback(params);
    assert.equal(session.did, did);

    const agent = new Agent(session);
    const post = await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text: 'hello over OAuth', createdAt: new Date().toISOString() },
    });
    assert.match(post.data.uri, /^at:\/\/did:plc:.+\/app\.bsky\.feed\.post\//);
    const stored = await fetch(
      `${pds.url}/xrpc/com.atproto.repo.getRecord?repo=${did}&collection=app.bsky.feed.post&rkey=${post.data.uri.split('/').pop()}`,
    );
    assert.equal(((await stored.json()) as { value: { text: string } }).value.text, 'hello over OAuth');

    const timeline = await agent.app.bsky.feed.getTimeline({ limit: 5 });
    assert.deepEqual(timeline.data.feed, []);
    const forwarded = seen.at(-1)!;
    assert.match(forwarded.url, /^\/xrpc\/app\.bsky\.feed\.getTimeline/);
    const jwt = jwtPayload(forwarded.authorization);
    assert.equal(jwt.iss, did);
    assert.equal(jwt.aud, APPVIEW_DID);
    assert.equal(jwt.lxm, 'app.bsky.feed.getTimeline');

    const before = sessionStore.map.get(did)!.tokenSet;
    const info = await session.getTokenInfo(true);
    const after = sessionStore.map.get(did)!.tokenSet;
    assert.notEqual(after.refresh_token, before.refresh_token, 'the refresh token is rotated');
    assert.notEqual(after.access_token, before.access_token);
    assert.ok(info.expiresAt && info.expiresAt.getTime() > Date.now());
    // The access token from before the refresh no longer works; the new one does.
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'app.bsky.feed.like',
      record: {
        $type: 'app.bsky.feed.like',
        subject: { uri: post.data.uri, cid: post.data.cid },
        createdAt: new Date().toISOString(),
      },
    });

    // The authorized-apps page lists the app.
    await page.goto(`${pds.url.replace('127.0.0.1', 'localhost')}/account/apps`);
    await page.getByRole('button', { name: /Revoke access for Development app/ }).waitFor();
    await checkAccessible(page, 'the authorized apps page');
    await page.screenshot({ path: join(SHOTS, 'oauth-apps.png'), fullPage: true });

    const saved = structuredClone(sessionStore.map.get(did)!);
    await session.signOut();
    // Put the revoked tokens back where the client keeps them and try to use them.
    sessionStore.map.set(did, saved);
    const revoked = await client.restore(did, false);
    await assert.rejects(
      new Agent(revoked).com.atproto.repo.createRecord({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'after revoke', createdAt: new Date().toISOString() },
      }),
    );
    const raw = await fetch(`${pds.url}/xrpc/com.atproto.server.getSession`, {
      headers: { authorization: `DPoP ${saved.tokenSet.access_token}` },
    });
    assert.equal(raw.status, 401);
    const count = pds.ctx.accountManager.db.prepare('SELECT count(*) AS n FROM oauth_token WHERE did = ?').get(did) as {
      n: number;
    };
    assert.equal(count.n, 0, 'no token of the app is left');
  });

  it('refuses a write the granted scope does not cover and allows the rest', async () => {
    const scope = 'atproto repo:app.bsky.feed.like?action=create';
    const { client } = oauthClient(scope);
    const url = await client.authorize('alice.test', { scope });
    // Still signed in from the first test: straight to the consent page, which names the grant.
    await page.goto(url.href);
    await page.getByRole('button', { name: 'Authorize' }).waitFor();
    assert.match(await page.locator('ul.grants').innerText(), /Create records in app\.bsky\.feed\.like/);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(callbackUrl)),
      page.getByRole('button', { name: 'Authorize' }).click(),
    ]);
    const { session } = await client.callback(new URL(page.url()).searchParams);
    const agent = new Agent(session);
    const now = new Date().toISOString();
    await assert.rejects(
      agent.com.atproto.repo.createRecord({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'not allowed', createdAt: now },
      }),
      (err: { status?: number; error?: string; message?: string }) => {
        assert.equal(err.status, 403);
        assert.equal(err.error, 'ScopeMissingError');
        assert.match(err.message ?? '', /repo:app\.bsky\.feed\.post\?action=create/);
        return true;
      },
    );
    await assert.rejects(agent.app.bsky.feed.getTimeline({}), (err: { status?: number }) => err.status === 403);
    const like = await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'app.bsky.feed.like',
      record: {
        $type: 'app.bsky.feed.like',
        subject: {
          uri: `at://${did}/app.bsky.feed.post/3jzfcijpj2z2a`,
          cid: 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a',
        },
        createdAt: now,
      },
    });
    assert.match(like.data.uri, /app\.bsky\.feed\.like/);
    const me = await agent.com.atproto.server.getSession();
    assert.equal(me.data.did, did);
    assert.equal(me.data.email, undefined, 'no email without account:email or transition:email');

    // Taking access back on the authorized-apps page signs the app out at once.
    await page.goto(`${pds.publicUrl}/account/apps`);
    const entry = page.locator('.apps > li', {
      has: page.locator(`input[name="client_id"][value="${client.clientMetadata.client_id}"]`),
    });
    await entry.getByRole('button', { name: /Revoke access/ }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /Access taken back/);
    assert.equal(await entry.count(), 0);
    await assert.rejects(agent.com.atproto.server.getSession());
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Password').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Revoke access' }).count(), 0, 'signed out');
  });

  it('Deny sends the user back with access_denied', async () => {
    const { client } = oauthClient('atproto');
    const url = await client.authorize('alice.test', { scope: 'atproto' });
    await page.goto(url.href);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(callbackUrl)),
      page.getByRole('button', { name: 'Deny' }).click(),
    ]);
    const params = new URL(page.url()).searchParams;
    assert.equal(params.get('error'), 'access_denied');
    await assert.rejects(client.callback(params));
  });
});
