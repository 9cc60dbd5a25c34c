/**
 * What must hold for sessions and credentials, tried as an attacker would, against a whole PDS
 * (and, for the token checks, against the reference PDS too, whose answers ours must match):
 * forged and misused tokens, refresh-token replay, what app passwords may not do, the password
 * hash format, and a log that never carries a password, token or mailed code.
 */
import assert from 'node:assert/strict';
import { createHmac, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import type { TestPds as ReferencePds, TestPlc } from '@atproto/dev-env';
import { generateSigningKey, type SigningKey } from '@portage/atproto/crypto';
import { hashPassword, verifyPassword } from '../src/account/passwords.ts';
import { jwtKeyFromSecret } from '../src/auth/tokens.ts';
import { createLogger } from '../src/logger.ts';
import { startReferencePds, startReferencePlc } from '../../../test/support/reference-peers.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { rejects } from './xrpc-assert.ts';
import { type Mailbox, startMailbox, tokenFromMail } from './mailbox.ts';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A JWT with any header, signed with HMAC-SHA256 over `secret`, or unsigned when it is null. */
function hmacJwt(header: object, payload: object, secret: KeyObject | Buffer | string | null): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = secret === null ? '' : createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

async function es256kJwt(header: object, payload: object, key: SigningKey): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await key.sign(new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}

function jwtPayload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

interface Answer {
  status: number;
  error?: string;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let error: string | undefined;
  try {
    error = (JSON.parse(text) as { error?: string }).error;
  } catch {}
  return { status: res.status, error };
}

/** One server under test: its URL, the secret it signs sessions with, and an account on it. */
interface Target {
  name: string;
  url: string;
  serviceDid: string;
  jwtKey: KeyObject;
  did: string;
  /** The account's #atproto key, as its DID document publishes it. */
  publicDidKey: string;
  accessJwt: string;
  refreshJwt: string;
}

async function signUp(url: string, handle: string, email: string, password: string) {
  const agent = new AtpAgent({ service: url });
  const { data } = await agent.createAccount({ handle, email, password });
  return { agent, data };
}

async function publicKeyOf(plcUrl: string, did: string): Promise<string> {
  const doc = (await (await fetch(`${plcUrl}/${did}`)).json()) as {
    verificationMethod: { id: string; publicKeyMultibase: string }[];
  };
  const method = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'))!;
  return `did:key:${method.publicKeyMultibase}`;
}

describe('auth security', () => {
  let mailbox: Mailbox;
  let pds: TestPds;
  let refDir: string;
  let refPlc: TestPlc;
  let reference: ReferencePds;
  let ours: Target;
  let theirs: Target;
  let chat: Server;
  let chatDid: string;
  const chatSeen: string[] = [];
  /** Everything the PDS logged, at trace level. */
  let logText = '';
  /** Every password, token and code this run handled: none may appear in the log. */
  const secrets = new Set<string>();
  const keep = (...values: (string | undefined)[]) => {
    for (const v of values) {
      if (!v) continue;
      secrets.add(v);
      // A JWT's signature alone is enough to replay it.
      const parts = v.split('.');
      if (parts.length === 3 && parts[2]!.length > 20) secrets.add(parts[2]!);
    }
  };
  const password = 'alice-password-1';

  before(async () => {
    mailbox = await startMailbox();
    const logSink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logText += chunk.toString('utf8');
        done();
      },
    });
    pds = await startTestPds({
      env: { PDS_EMAIL_SMTP_URL: mailbox.url, PDS_EMAIL_FROM_ADDRESS: 'pds@example.com' },
      logger: createLogger('trace', logSink),
    });
    chat = createServer((req, res) => {
      if (req.url === '/.well-known/did.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            '@context': ['https://www.w3.org/ns/did/v1'],
            id: chatDid,
            service: [{ id: '#bsky_chat', type: 'BskyChatService', serviceEndpoint: chatUrl }],
          }),
        );
        return;
      }
      chatSeen.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"convos":[]}');
    });
    await new Promise<void>((resolve) => chat.listen(0, '127.0.0.1', resolve));
    const chatPort = (chat.address() as AddressInfo).port;
    const chatUrl = `http://127.0.0.1:${chatPort}`;
    chatDid = `did:web:127.0.0.1%3A${chatPort}`;

    refDir = mkdtempSync(join(tmpdir(), 'portage-auth-security-ref-'));
    refPlc = await startReferencePlc(refDir);
    reference = await startReferencePds(refDir, refPlc.url);

    const mine = await signUp(pds.url, 'alice.test', 'alice@example.com', password);
    keep(password, mine.data.accessJwt, mine.data.refreshJwt);
    ours = {
      name: 'portage',
      url: pds.url,
      serviceDid: pds.ctx.config.serviceDid,
      jwtKey: jwtKeyFromSecret(pds.ctx.config.jwtSecret),
      did: mine.data.did,
      publicDidKey: await publicKeyOf(pds.plcUrl, mine.data.did),
      accessJwt: mine.data.accessJwt,
      refreshJwt: mine.data.refreshJwt,
    };
    const ref = await signUp(reference.url, 'alice.test', 'alice@example.com', password);
    theirs = {
      name: 'reference',
      url: reference.url,
      serviceDid: reference.ctx.cfg.service.did,
      jwtKey: reference.jwtSecretKey(),
      did: ref.data.did,
      publicDidKey: await publicKeyOf(refPlc.url, ref.data.did),
      accessJwt: ref.data.accessJwt,
      refreshJwt: ref.data.refreshJwt,
    };
  });

  after(async () => {
    await pds?.close();
    await mailbox?.close();
    await reference?.close();
    await refPlc?.close();
    await new Promise<void>((resolve) => (chat ? chat.close(() => resolve()) : resolve()));
    if (refDir) rmSync(refDir, { recursive: true, force: true });
  });

  /** The session claims a token of each server would carry. */
  const claims = (t: Target, extra: Record<string, unknown> = {}) => ({
    scope: 'com.atproto.access',
    sub: t.did,
    aud: t.serviceDid,
    iat: now(),
    exp: now() + 3600,
    ...extra,
  });

  async function getSession(t: Target, token: string): Promise<Answer> {
    return answer(
      await fetch(`${t.url}/xrpc/com.atproto.server.getSession`, { headers: { authorization: `Bearer ${token}` } }),
    );
  }

  /** The same forged or misused tokens, presented to getSession on both servers. */
  async function accessAttempts(t: Target, es256k: SigningKey): Promise<Record<string, Answer>> {
    return {
      control: await getSession(t, hmacJwt({ alg: 'HS256', typ: 'at+jwt' }, claims(t), t.jwtKey)),
      algNone: await getSession(t, hmacJwt({ alg: 'none', typ: 'at+jwt' }, claims(t), null)),
      algNoneSigned: await getSession(t, hmacJwt({ alg: 'none', typ: 'at+jwt' }, claims(t), t.jwtKey)),
      es256k: await getSession(t, await es256kJwt({ alg: 'ES256K', typ: 'at+jwt' }, claims(t), es256k)),
      hs256WithPublicKey: await getSession(t, hmacJwt({ alg: 'HS256', typ: 'at+jwt' }, claims(t), t.publicDidKey)),
      expired: await getSession(
        t,
        hmacJwt({ alg: 'HS256', typ: 'at+jwt' }, claims(t, { iat: now() - 7300, exp: now() - 100 }), t.jwtKey),
      ),
      wrongAudience: await getSession(
        t,
        hmacJwt({ alg: 'HS256', typ: 'at+jwt' }, claims(t, { aud: 'did:web:elsewhere.test' }), t.jwtKey),
      ),
      noTyp: await getSession(t, hmacJwt({ alg: 'HS256' }, claims(t), t.jwtKey)),
      refreshAsAccess: await getSession(t, t.refreshJwt),
    };
  }

  it('refuses forged and misused access tokens as the reference does', async () => {
    const es256k = await generateSigningKey();
    const mine = await accessAttempts(ours, es256k);
    const refs = await accessAttempts(theirs, es256k);
    assert.equal(mine.control!.status, 200, 'a well-formed token is accepted');
    for (const [name, got] of Object.entries(mine)) {
      if (name === 'control') continue;
      assert.ok(got.status === 400 || got.status === 401, `${name} refused (${got.status})`);
    }
    assert.equal(mine.expired!.error, 'ExpiredToken');
    assert.equal(mine.algNone!.error, 'InvalidToken');
    assert.deepEqual(mine, refs);
  });

  /** A service JWT (iss = the account) signed with HMAC, keyed with the account's public key. */
  function hs256ServiceJwt(t: Target, lxm: string, secret: string | Buffer | null, alg = 'HS256'): string {
    return hmacJwt(
      { alg, typ: 'JWT' },
      { iss: t.did, aud: t.serviceDid, lxm, iat: now(), exp: now() + 60, jti: `${Math.random()}` },
      secret,
    );
  }

  async function serviceAttempts(t: Target): Promise<Record<string, Answer>> {
    const createAccount = async (token: string) =>
      answer(
        await fetch(`${t.url}/xrpc/com.atproto.server.createAccount`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            handle: 'mallory.test',
            did: t.did,
            email: 'mallory@example.com',
            password: 'x-pass-1',
          }),
        }),
      );
    const uploadBlob = async (token: string) =>
      answer(
        await fetch(`${t.url}/xrpc/com.atproto.repo.uploadBlob`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
          body: 'not allowed',
        }),
      );
    const multibase = t.publicDidKey.slice('did:key:'.length);
    return {
      createAccountDidKey: await createAccount(hs256ServiceJwt(t, 'com.atproto.server.createAccount', t.publicDidKey)),
      createAccountMultibase: await createAccount(hs256ServiceJwt(t, 'com.atproto.server.createAccount', multibase)),
      createAccountNone: await createAccount(hs256ServiceJwt(t, 'com.atproto.server.createAccount', null, 'none')),
      uploadBlobDidKey: await uploadBlob(hs256ServiceJwt(t, 'com.atproto.repo.uploadBlob', t.publicDidKey)),
      uploadBlobNone: await uploadBlob(hs256ServiceJwt(t, 'com.atproto.repo.uploadBlob', null, 'none')),
    };
  }

  it('refuses HMAC-signed and unsigned service JWTs where an ES256K signature is expected', async () => {
    const mine = await serviceAttempts(ours);
    const refs = await serviceAttempts(theirs);
    for (const [name, got] of Object.entries(mine)) assert.equal(got.status, 401, `${name} refused`);
    assert.deepEqual(mine, refs);
    assert.equal(pds.ctx.accountManager.getAccount('mallory.test'), undefined, 'no account was made');
  });

  it('rotates refresh tokens; a replay after the grace period is refused and its row removed', async () => {
    const agent = new AtpAgent({ service: pds.url });
    const { data: first } = await agent.com.atproto.server.createSession({ identifier: 'alice.test', password });
    keep(first.accessJwt, first.refreshJwt);
    const refresh = async (jwt: string) =>
      fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
        method: 'POST',
        headers: { authorization: `Bearer ${jwt}` },
      });
    const rotated = (await (await refresh(first.refreshJwt)).json()) as { refreshJwt: string; accessJwt: string };
    keep(rotated.accessJwt, rotated.refreshJwt);
    const oldId = jwtPayload(first.refreshJwt).jti as string;
    const nextId = jwtPayload(rotated.refreshJwt).jti as string;
    assert.notEqual(nextId, oldId);
    const rowOf = (id: string) =>
      pds.ctx.accountManager.db.prepare('SELECT * FROM refresh_token WHERE id = ?').get(id) as
        { expires_at: number; next_id: string | null } | undefined;
    const graceLeft = rowOf(oldId)!.expires_at - now();
    assert.ok(graceLeft > 2 * 3600 - 60 && graceLeft <= 2 * 3600, `two hours of grace (${graceLeft} s)`);
    assert.equal(rowOf(oldId)!.next_id, nextId);

    // Within the grace period a retry gets the same successor.
    const retry = (await (await refresh(first.refreshJwt)).json()) as { refreshJwt: string; accessJwt: string };
    keep(retry.accessJwt, retry.refreshJwt);
    assert.equal(jwtPayload(retry.refreshJwt).jti, nextId);

    // Nor does a retry give back the successor's lifetime once the successor was rotated in its turn.
    const third = (await (await refresh(rotated.refreshJwt)).json()) as { refreshJwt: string; accessJwt: string };
    keep(third.accessJwt, third.refreshJwt);
    const secondGrace = rowOf(nextId)!.expires_at;
    assert.ok(secondGrace - now() <= 2 * 3600);
    const again = (await (await refresh(first.refreshJwt)).json()) as { refreshJwt: string; accessJwt: string };
    keep(again.accessJwt, again.refreshJwt);
    assert.equal(jwtPayload(again.refreshJwt).jti, nextId);
    assert.equal(rowOf(nextId)!.expires_at, secondGrace, 'the rotated successor keeps its grace period only');

    // Two hours later: the grace period is over.
    pds.ctx.accountManager.db.prepare('UPDATE refresh_token SET expires_at = ? WHERE id = ?').run(now() - 1, oldId);
    assert.deepEqual(await answer(await refresh(first.refreshJwt)), { status: 400, error: 'ExpiredToken' });
    assert.equal(rowOf(oldId), undefined, 'the replayed token is gone');
    // As in the reference, the successor the legitimate client holds keeps working.
    const onward = await refresh(rotated.refreshJwt);
    assert.equal(onward.status, 200);
    const onwardBody = (await onward.json()) as { refreshJwt: string; accessJwt: string };
    keep(onwardBody.accessJwt, onwardBody.refreshJwt);
  });

  it('gives concurrent refreshes of one token the same successor', async () => {
    const agent = new AtpAgent({ service: pds.url });
    const { data } = await agent.com.atproto.server.createSession({ identifier: 'alice.test', password });
    keep(data.accessJwt, data.refreshJwt);
    const results = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const res = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
          method: 'POST',
          headers: { authorization: `Bearer ${data.refreshJwt}` },
        });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { refreshJwt: string; accessJwt: string };
        keep(body.accessJwt, body.refreshJwt);
        return jwtPayload(body.refreshJwt).jti;
      }),
    );
    assert.equal(new Set(results).size, 1, 'one successor, not a fork');
    const live = pds.ctx.accountManager.db
      .prepare('SELECT count(*) AS n FROM refresh_token WHERE id = ?')
      .get(results[0]) as { n: number };
    assert.equal(live.n, 1);
  });

  it('keeps app passwords away from credentials, deletion, PLC signing and new app passwords', async () => {
    const alice = new AtpAgent({ service: pds.url });
    await alice.login({ identifier: 'alice.test', password });
    keep(alice.session?.accessJwt, alice.session?.refreshJwt);
    const { data: plain } = await alice.com.atproto.server.createAppPassword({ name: 'plain' });
    const { data: privileged } = await alice.com.atproto.server.createAppPassword({ name: 'chat', privileged: true });
    keep(plain.password, privileged.password);

    const app = new AtpAgent({ service: pds.url });
    await app.login({ identifier: 'alice.test', password: plain.password });
    keep(app.session?.accessJwt, app.session?.refreshJwt);
    const server = app.com.atproto.server;
    await rejects(server.requestEmailUpdate(), 400, 'InvalidToken');
    await rejects(server.updateEmail({ email: 'mallory@example.com' }), 400, 'InvalidToken');
    await rejects(server.requestEmailConfirmation(), 400, 'InvalidToken');
    await rejects(server.confirmEmail({ email: 'alice@example.com', token: 'AAAAA-AAAAA' }), 400, 'InvalidToken');
    await rejects(server.requestAccountDelete(), 400, 'InvalidToken');
    await rejects(server.createAppPassword({ name: 'more' }), 400, 'InvalidToken');
    await rejects(server.deactivateAccount({}), 400, 'InvalidToken');
    await rejects(app.com.atproto.identity.requestPlcOperationSignature(), 400, 'InvalidToken');
    await rejects(app.com.atproto.identity.signPlcOperation({ token: 'AAAAA-AAAAA' }), 400, 'InvalidToken');
    // Nor is an app password the account password: not for deletion, even with the mailed code.
    await alice.com.atproto.server.requestAccountDelete();
    const deleteToken = tokenFromMail(mailbox, 'alice@example.com');
    keep(deleteToken);
    await rejects(
      server.deleteAccount({ did: ours.did, password: plain.password, token: deleteToken }),
      401,
      'AuthenticationRequired',
    );
    assert.ok(pds.ctx.accountManager.getAccount(ours.did), 'the account is still there');
    assert.equal((await alice.com.atproto.server.getSession()).data.email, 'alice@example.com');

    // Direct messages need a privileged app password.
    const listConvos = (jwt: string) =>
      fetch(`${pds.url}/xrpc/chat.bsky.convo.listConvos`, {
        headers: { authorization: `Bearer ${jwt}`, 'atproto-proxy': `${chatDid}#bsky_chat` },
      });
    assert.deepEqual(await answer(await listConvos(app.session!.accessJwt)), { status: 400, error: 'InvalidToken' });
    assert.equal(chatSeen.length, 0, 'nothing reached the chat service');
    const priv = new AtpAgent({ service: pds.url });
    await priv.login({ identifier: 'alice.test', password: privileged.password });
    keep(priv.session?.accessJwt, priv.session?.refreshJwt);
    assert.equal((await listConvos(priv.session!.accessJwt)).status, 200);
    assert.deepEqual(chatSeen, ['/xrpc/chat.bsky.convo.listConvos']);
    // The scope survives a refresh.
    await priv.sessionManager.refreshSession();
    keep(priv.session?.accessJwt, priv.session?.refreshJwt);
    assert.equal(jwtPayload(priv.session!.accessJwt).scope, 'com.atproto.appPassPrivileged');
    await app.sessionManager.refreshSession();
    keep(app.session?.accessJwt, app.session?.refreshJwt);
    assert.deepEqual(await answer(await listConvos(app.session!.accessJwt)), { status: 400, error: 'InvalidToken' });
  });

  it('hashes passwords in the reference format, each side verifying the other', async () => {
    type Scrypt = {
      genSaltAndHash(password: string): Promise<string>;
      verify(password: string, stored: string): Promise<boolean>;
    };
    const refScrypt = (await import(
      new URL('../../../node_modules/@atproto/pds/dist/account-manager/helpers/scrypt.js', import.meta.url).href
    )) as Scrypt;
    for (const pw of ['hunter2-but-longer', 'e\u0301t\u00e9 \uFB01n', '\u00c5ngstr\u00f6m \u2126', 'x'.repeat(256)]) {
      const ourHash = await hashPassword(pw);
      assert.match(ourHash, /^[0-9a-f]{32}:[0-9a-f]{128}$/);
      assert.ok(await refScrypt.verify(pw, ourHash), `the reference verifies our hash of ${JSON.stringify(pw)}`);
      const refHash = await refScrypt.genSaltAndHash(pw);
      assert.ok(await verifyPassword(pw, refHash), `we verify the reference's hash of ${JSON.stringify(pw)}`);
      assert.equal(await verifyPassword(`${pw}!`, refHash), false);
      assert.equal(await refScrypt.verify(`${pw}!`, ourHash), false);
    }
    // Accounts an earlier Portage hashed (the NFKC form of the password) still sign in.
    const legacy = await refScrypt.genSaltAndHash('\uFB01ne p\u00e2t\u00e9'.normalize('NFKC'));
    assert.ok(await verifyPassword('\uFB01ne p\u00e2t\u00e9', legacy));
    assert.equal(await verifyPassword('fine pate', legacy), false);
    assert.equal(await verifyPassword('anything', 'not-a-hash'), false);
    assert.equal(await verifyPassword('anything', 'abcd:12'), false);
  });

  it('writes no password, token or code into its log through the account flows and admin calls', async () => {
    const bobPassword = 'bob-password-secret-1';
    const bob = await signUp(pds.url, 'bob.test', 'bob@example.com', bobPassword);
    keep(bobPassword, bob.data.accessJwt, bob.data.refreshJwt);
    const agent = bob.agent;
    // Signing in, wrongly and rightly, and refreshing.
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'bob.test', password: 'bob-wrong-secret' }),
      401,
      'AuthenticationRequired',
    );
    keep('bob-wrong-secret');
    await agent.login({ identifier: 'bob@example.com', password: bobPassword });
    keep(agent.session?.accessJwt, agent.session?.refreshJwt);
    await agent.sessionManager.refreshSession();
    keep(agent.session?.accessJwt, agent.session?.refreshJwt);
    // App passwords.
    const { data: appPw } = await agent.com.atproto.server.createAppPassword({ name: 'logged' });
    keep(appPw.password);
    const viaApp = new AtpAgent({ service: pds.url });
    await viaApp.login({ identifier: 'bob.test', password: appPw.password });
    keep(viaApp.session?.accessJwt, viaApp.session?.refreshJwt);
    await agent.com.atproto.server.revokeAppPassword({ name: 'logged' });
    // Email confirmation, change, and sign-in codes.
    await agent.com.atproto.server.requestEmailConfirmation();
    const confirm = tokenFromMail(mailbox, 'bob@example.com');
    keep(confirm);
    await rejects(
      agent.com.atproto.server.confirmEmail({ email: 'bob@example.com', token: 'ZZZZZ-ZZZZZ' }),
      400,
      'InvalidToken',
    );
    await agent.com.atproto.server.confirmEmail({ email: 'bob@example.com', token: confirm });
    await agent.com.atproto.server.requestEmailUpdate();
    const update = tokenFromMail(mailbox, 'bob@example.com');
    keep(update);
    await agent.com.atproto.server.updateEmail({ email: 'bob@example.com', token: update, emailAuthFactor: true });
    const twoFactor = new AtpAgent({ service: pds.url });
    await rejects(twoFactor.login({ identifier: 'bob.test', password: bobPassword }), 401, 'AuthFactorTokenRequired');
    const signInCode = tokenFromMail(mailbox, 'bob@example.com');
    keep(signInCode);
    await twoFactor.login({ identifier: 'bob.test', password: bobPassword, authFactorToken: signInCode });
    keep(twoFactor.session?.accessJwt, twoFactor.session?.refreshJwt);
    // Password reset.
    await agent.com.atproto.server.requestPasswordReset({ email: 'bob@example.com' });
    const reset = tokenFromMail(mailbox, 'bob@example.com');
    keep(reset);
    const newPassword = 'bob-new-password-secret';
    keep(newPassword);
    await agent.com.atproto.server.resetPassword({ token: reset, password: newPassword });
    await rejects(
      agent.com.atproto.server.resetPassword({ token: reset, password: 'another-secret-pw' }),
      400,
      'InvalidToken',
    );
    keep('another-secret-pw');
    // Service auth.
    const fresh = new AtpAgent({ service: pds.url });
    await rejects(fresh.login({ identifier: 'bob.test', password: newPassword }), 401, 'AuthFactorTokenRequired');
    const code2 = tokenFromMail(mailbox, 'bob@example.com');
    keep(code2);
    await fresh.login({ identifier: 'bob.test', password: newPassword, authFactorToken: code2 });
    keep(fresh.session?.accessJwt, fresh.session?.refreshJwt);
    const { data: svc } = await fresh.com.atproto.server.getServiceAuth({
      aud: 'did:web:elsewhere.test',
      lxm: 'app.bsky.feed.getTimeline',
    });
    keep(svc.token);
    // Admin calls: the admin password in Basic auth, wrong and right, a password the admin sets
    // and an invite code.
    const asAdmin = (password: string) => ({
      headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
      encoding: 'application/json' as const,
    });
    const adminPassword = pds.ctx.config.adminPassword;
    keep(adminPassword, 'admin-wrong-secret');
    await rejects(
      fresh.com.atproto.admin.getAccountInfo({ did: bob.data.did }, asAdmin('admin-wrong-secret')),
      401,
      'AuthenticationRequired',
    );
    await fresh.com.atproto.admin.getAccountInfo({ did: bob.data.did }, asAdmin(adminPassword));
    const adminSetPassword = 'admin-set-password-secret';
    keep(adminSetPassword);
    await fresh.com.atproto.admin.updateAccountPassword(
      { did: bob.data.did, password: adminSetPassword },
      asAdmin(adminPassword),
    );
    const { data: invite } = await fresh.com.atproto.server.createInviteCode({ useCount: 1 }, asAdmin(adminPassword));
    keep(invite.code);
    // Deleting the account.
    await fresh.com.atproto.server.requestAccountDelete();
    const del = tokenFromMail(mailbox, 'bob@example.com');
    keep(del);
    await rejects(
      fresh.com.atproto.server.deleteAccount({ did: bob.data.did, password: 'bob-wrong-secret', token: del }),
      401,
      'AuthenticationRequired',
    );
    await fresh.com.atproto.server.deleteAccount({ did: bob.data.did, password: adminSetPassword, token: del });

    // The log saw all of it (requests at least), and none of the secrets.
    assert.match(logText, /com\.atproto\.server\.createSession/);
    assert.match(logText, /com\.atproto\.admin\.updateAccountPassword/);
    assert.match(logText, /email sent/);
    for (const secret of secrets) {
      assert.ok(!logText.includes(secret), `the log carries a secret: ${secret.slice(0, 6)}…`);
    }
    // Nor the hashes they are stored as.
    const hashes = pds.ctx.accountManager.db.prepare('SELECT password_scrypt FROM account').all() as {
      password_scrypt: string;
    }[];
    for (const { password_scrypt } of hashes) assert.ok(!logText.includes(password_scrypt.split(':')[1]!));
  });
});
