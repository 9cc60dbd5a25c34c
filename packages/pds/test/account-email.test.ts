/**
 * The account's email flows through @atproto/api, with a real SMTP server: confirming the
 * address, changing it, resetting a forgotten password, deleting the account. Every code is read from the mail that
 * reached the mailbox; every bad code is refused with the reference's error and changes nothing.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { readFirehose, startTestPds, type TestPds } from './harness.ts';
import { rejects } from './xrpc-assert.ts';
import { type Mailbox, startPdsWithMailbox, tokenFromMail } from './mailbox.ts';

describe('email flows through @atproto/api with a real SMTP server', () => {
  let mailbox: Mailbox;
  let pds: TestPds;
  let alice: AtpAgent;
  let bob: AtpAgent;
  const password = 'alice-old-password';

  before(async () => {
    ({ pds, mailbox } = await startPdsWithMailbox());
    alice = new AtpAgent({ service: pds.url });
    await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password });
    bob = new AtpAgent({ service: pds.url });
    await bob.createAccount({ handle: 'bob.test', email: 'bob@example.com', password: 'bob-password' });
  });
  after(async () => {
    await pds?.close();
    await mailbox?.close();
  });

  /** Makes the newest mailed code of `purpose` for the account 16 minutes old. */
  function ageToken(did: string, purpose: string): void {
    const sixteenMinutesAgo = new Date(Date.now() - 16 * 60_000).toISOString();
    pds.ctx.accountManager.db
      .prepare('UPDATE email_token SET requested_at = ? WHERE did = ? AND purpose = ?')
      .run(sixteenMinutesAgo, did, purpose);
  }

  it('confirms the address with the mailed code, once', async () => {
    assert.equal((await alice.com.atproto.server.getSession()).data.emailConfirmed, false);
    await alice.com.atproto.server.requestEmailConfirmation();
    const token = tokenFromMail(mailbox, 'alice@example.com');
    const mail = mailbox.messages.at(-1)!.raw;
    assert.match(mail, /Subject: Confirm your email address/);
    assert.match(mail, /text\/plain/);
    assert.match(mail, /text\/html/);

    await bob.com.atproto.server.requestEmailConfirmation();
    const bobsToken = tokenFromMail(mailbox, 'bob@example.com');
    await rejects(
      alice.com.atproto.server.confirmEmail({ email: 'alice@example.com', token: bobsToken }),
      400,
      'InvalidToken',
    );
    await rejects(alice.com.atproto.server.confirmEmail({ email: 'other@example.com', token }), 400, 'InvalidEmail');
    await rejects(
      alice.com.atproto.server.confirmEmail({ email: 'alice@example.com', token: 'AAAAA-AAAAA' }),
      400,
      'InvalidToken',
    );
    assert.equal((await alice.com.atproto.server.getSession()).data.emailConfirmed, false, 'nothing changed');

    await alice.com.atproto.server.confirmEmail({ email: 'ALICE@example.com', token });
    assert.equal((await alice.com.atproto.server.getSession()).data.emailConfirmed, true);
    await rejects(alice.com.atproto.server.confirmEmail({ email: 'alice@example.com', token }), 400, 'InvalidToken');
  });

  it('an expired code is refused', async () => {
    await bob.com.atproto.server.requestEmailConfirmation();
    const token = tokenFromMail(mailbox, 'bob@example.com');
    ageToken(bob.session!.did, 'confirm_email');
    await rejects(bob.com.atproto.server.confirmEmail({ email: 'bob@example.com', token }), 400, 'ExpiredToken');
    assert.equal((await bob.com.atproto.server.getSession()).data.emailConfirmed, false);
  });

  it('changes a confirmed address only with the code mailed to it', async () => {
    const update = await alice.com.atproto.server.requestEmailUpdate();
    assert.equal(update.data.tokenRequired, true);
    const token = tokenFromMail(mailbox, 'alice@example.com');
    assert.match(mailbox.messages.at(-1)!.raw, /Subject: Change your email address/);

    await rejects(alice.com.atproto.server.updateEmail({ email: 'alice2@example.com' }), 400, 'TokenRequired');
    await alice.com.atproto.server.requestEmailConfirmation();
    const confirmToken = tokenFromMail(mailbox, 'alice@example.com');
    await rejects(
      alice.com.atproto.server.updateEmail({ email: 'alice2@example.com', token: confirmToken }),
      400,
      'InvalidToken',
    );
    await rejects(alice.com.atproto.server.updateEmail({ email: 'bob@example.com', token }), 400, 'InvalidRequest');
    await rejects(alice.com.atproto.server.updateEmail({ email: 'not an address', token }), 400, 'InvalidRequest');
    const unchanged = (await alice.com.atproto.server.getSession()).data;
    assert.equal(unchanged.email, 'alice@example.com');
    assert.equal(unchanged.emailConfirmed, true);

    await alice.com.atproto.server.updateEmail({ email: 'alice2@example.com', token });
    const session = (await alice.com.atproto.server.getSession()).data;
    assert.equal(session.email, 'alice2@example.com');
    assert.equal(session.emailConfirmed, false);
    // The code was spent: with the new address confirmed, it changes nothing any more.
    await alice.com.atproto.server.requestEmailConfirmation();
    await alice.com.atproto.server.confirmEmail({
      email: 'alice2@example.com',
      token: tokenFromMail(mailbox, 'alice2@example.com'),
    });
    await rejects(alice.com.atproto.server.updateEmail({ email: 'alice3@example.com', token }), 400, 'InvalidToken');
    assert.equal((await alice.com.atproto.server.getSession()).data.email, 'alice2@example.com');
  });

  it('an unconfirmed address changes without a code', async () => {
    const update = await bob.com.atproto.server.requestEmailUpdate();
    assert.equal(update.data.tokenRequired, false);
    await bob.com.atproto.server.updateEmail({ email: 'bob2@example.com' });
    assert.equal((await bob.com.atproto.server.getSession()).data.email, 'bob2@example.com');
  });

  it('app passwords cannot change the email address', async () => {
    const { data: appPassword } = await alice.com.atproto.server.createAppPassword({ name: 'phone' });
    const app = new AtpAgent({ service: pds.url });
    await app.login({ identifier: 'alice.test', password: appPassword.password });
    await rejects(app.com.atproto.server.requestEmailUpdate(), 400, 'InvalidToken');
    await rejects(app.com.atproto.server.updateEmail({ email: 'thief@example.com' }), 400, 'InvalidToken');
    assert.equal((await alice.com.atproto.server.getSession()).data.email, 'alice2@example.com');
  });

  it('resets a forgotten password with the mailed code and ends every session', async () => {
    const anon = new AtpAgent({ service: pds.url });
    await rejects(anon.com.atproto.server.requestPasswordReset({ email: 'nobody@example.com' }), 400, 'InvalidRequest');
    await anon.com.atproto.server.requestPasswordReset({ email: 'ALICE2@example.com' });
    const token = tokenFromMail(mailbox, 'alice2@example.com');
    assert.match(mailbox.messages.at(-1)!.raw, /Subject: Reset your password/);

    await rejects(
      anon.com.atproto.server.resetPassword({ token: 'AAAAA-AAAAA', password: 'new-password' }),
      400,
      'InvalidToken',
    );
    await rejects(anon.com.atproto.server.resetPassword({ token, password: 'x'.repeat(257) }), 400, 'InvalidRequest');
    // Still the old password.
    await new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password });

    const refreshJwt = alice.session!.refreshJwt;
    await anon.com.atproto.server.resetPassword({ token, password: 'alice-new-password' });
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password }),
      401,
      'AuthenticationRequired',
    );
    await new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password: 'alice-new-password' });
    const refresh = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
      method: 'POST',
      headers: { authorization: `Bearer ${refreshJwt}` },
    });
    assert.equal(refresh.status, 400, 'the old session cannot be refreshed');
    await rejects(anon.com.atproto.server.resetPassword({ token, password: 'again-password' }), 400, 'InvalidToken');
  });

  it('an expired reset code is refused', async () => {
    const anon = new AtpAgent({ service: pds.url });
    await anon.com.atproto.server.requestPasswordReset({ email: 'bob2@example.com' });
    const token = tokenFromMail(mailbox, 'bob2@example.com');
    ageToken(bob.session!.did, 'reset_password');
    await rejects(anon.com.atproto.server.resetPassword({ token, password: 'bob-new-password' }), 400, 'ExpiredToken');
    await new AtpAgent({ service: pds.url }).login({ identifier: 'bob.test', password: 'bob-password' });
  });
});

describe('deprecated sync methods and the sign-up queue', () => {
  let pds: TestPds;
  let agent: AtpAgent;
  before(async () => {
    pds = await startTestPds();
    agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'carol.test', email: 'carol@example.com', password: 'carol-password' });
    await agent.post({ text: 'hello' });
  });
  after(() => pds?.close());

  it('getHead and getCheckout answer what getLatestCommit and getRepo do', async () => {
    const did = agent.session!.did;
    const latest = await agent.com.atproto.sync.getLatestCommit({ did });
    const head = await fetch(`${pds.url}/xrpc/com.atproto.sync.getHead?did=${did}`);
    assert.deepEqual(await head.json(), { root: latest.data.cid });
    const checkout = await fetch(`${pds.url}/xrpc/com.atproto.sync.getCheckout?did=${did}`);
    assert.equal(checkout.headers.get('content-type'), 'application/vnd.ipld.car');
    const repo = await fetch(`${pds.url}/xrpc/com.atproto.sync.getRepo?did=${did}`);
    assert.deepEqual(new Uint8Array(await checkout.arrayBuffer()), new Uint8Array(await repo.arrayBuffer()));
    const missing = await fetch(`${pds.url}/xrpc/com.atproto.sync.getHead?did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa`);
    assert.equal(missing.status, 400);
  });

  it('checkSignupQueue says the account is active', async () => {
    assert.deepEqual((await agent.com.atproto.temp.checkSignupQueue()).data, { activated: true });
  });
});

describe('deleting an account through @atproto/api', () => {
  let mailbox: Mailbox;
  let pds: TestPds;
  let agent: AtpAgent;
  let did: string;
  const password = 'dave-password';

  before(async () => {
    ({ pds, mailbox } = await startPdsWithMailbox());
    agent = new AtpAgent({ service: pds.url });
    did = (await agent.createAccount({ handle: 'dave.test', email: 'dave@example.com', password })).data.did;
  });
  after(async () => {
    await pds?.close();
    await mailbox?.close();
  });

  it('needs the password and the mailed code, deletes the repository, blobs and sessions, and frees the handle', async () => {
    const image = new Uint8Array(2048).map((_, i) => (i * 7) % 251);
    const { data: uploaded } = await agent.com.atproto.repo.uploadBlob(image, { encoding: 'image/png' });
    await agent.post({
      text: 'a picture',
      embed: { $type: 'app.bsky.embed.images', images: [{ image: uploaded.blob, alt: 'noise' }] },
    });
    const cid = uploaded.blob.ref.toString();
    const blobFiles = () => readdirSync(pds.ctx.config.blobstoreDiskLocation, { recursive: true }).map(String);
    assert.ok(
      blobFiles().some((f) => f.includes(cid)),
      'the blob is on disk',
    );

    await agent.com.atproto.server.requestAccountDelete();
    const token = tokenFromMail(mailbox, 'dave@example.com');
    assert.match(mailbox.messages.at(-1)!.raw, /Subject: Delete your account/);
    const anon = new AtpAgent({ service: pds.url });
    await rejects(
      anon.com.atproto.server.deleteAccount({ did, password: 'wrong-password', token }),
      401,
      'AuthenticationRequired',
    );
    await rejects(anon.com.atproto.server.deleteAccount({ did, password, token: 'AAAAA-AAAAA' }), 400, 'InvalidToken');
    // Nothing changed: the account still reads and writes.
    await agent.post({ text: 'still here' });

    const cursorBefore = pds.ctx.sequencer.lastSeq();
    await anon.com.atproto.server.deleteAccount({ did, password, token });

    await rejects(anon.com.atproto.sync.getRepo({ did }), 400, 'RepoNotFound');
    const repos = (await anon.com.atproto.sync.listRepos()).data.repos.map((r) => r.did);
    assert.ok(!repos.includes(did), 'gone from listRepos');
    assert.ok(!blobFiles().some((f) => f.includes(cid)), 'the blob is gone from disk');
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'dave.test', password }),
      401,
      'AuthenticationRequired',
    );
    const refresh = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.session!.refreshJwt}` },
    });
    assert.equal(refresh.status, 400, 'its sessions are gone');

    // The firehose: only the #account event (status deleted) is left of the account.
    const frames = await readFirehose(pds.url, 0, (f) => f.t === '#account' && f.body.did === did, 5000);
    const mine = frames.filter((f) => f.body.did === did || f.body.repo === did);
    assert.deepEqual(
      mine.map((f) => [f.t, f.body.active, f.body.status]),
      [['#account', false, 'deleted']],
    );
    assert.ok((mine[0]!.body.seq as number) > cursorBefore);

    // The handle can be taken again.
    await new AtpAgent({ service: pds.url }).createAccount({
      handle: 'dave.test',
      email: 'dave@example.com',
      password: 'new-dave-password',
    });
  });
});

describe('sign-in codes by email (emailAuthFactor)', () => {
  let mailbox: Mailbox;
  let pds: TestPds;
  let agent: AtpAgent;
  const password = 'erin-password';

  before(async () => {
    ({ pds, mailbox } = await startPdsWithMailbox());
    agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'erin.test', email: 'erin@example.com', password });
  });
  after(async () => {
    await pds?.close();
    await mailbox?.close();
  });

  it('needs a confirmed address, then turns on with the code mailed to it', async () => {
    await rejects(
      agent.com.atproto.server.updateEmail({ email: 'erin@example.com', emailAuthFactor: true }),
      400,
      'InvalidRequest',
    );
    assert.equal((await agent.com.atproto.server.getSession()).data.emailAuthFactor, false);
    await agent.com.atproto.server.requestEmailConfirmation();
    await agent.com.atproto.server.confirmEmail({
      email: 'erin@example.com',
      token: tokenFromMail(mailbox, 'erin@example.com'),
    });
    await agent.com.atproto.server.requestEmailUpdate();
    const token = tokenFromMail(mailbox, 'erin@example.com');
    await agent.com.atproto.server.updateEmail({ email: 'erin@example.com', emailAuthFactor: true, token });
    const session = (await agent.com.atproto.server.getSession()).data;
    assert.equal(session.emailAuthFactor, true);
    assert.equal(session.emailConfirmed, true, 'the same address stays confirmed');
  });

  it('sign-in with the password then asks for a mailed code, once', async () => {
    const mailsBefore = mailbox.messages.length;
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'erin.test', password }),
      401,
      'AuthFactorTokenRequired',
    );
    assert.equal(mailbox.messages.length, mailsBefore + 1);
    assert.match(mailbox.messages.at(-1)!.raw, /Subject: Your sign-in code/);
    const code = tokenFromMail(mailbox, 'erin@example.com');
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'erin.test', password, authFactorToken: 'AAAAA-AAAAA' }),
      400,
      'InvalidToken',
    );
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'erin.test', password: 'wrong', authFactorToken: code }),
      401,
      'AuthenticationRequired',
    );
    const signedIn = new AtpAgent({ service: pds.url });
    await signedIn.login({ identifier: 'erin.test', password, authFactorToken: code });
    assert.equal((await signedIn.com.atproto.server.getSession()).data.handle, 'erin.test');
    await rejects(
      new AtpAgent({ service: pds.url }).login({ identifier: 'erin.test', password, authFactorToken: code }),
      400,
      'InvalidToken',
    );
  });

  it('app passwords sign in without a code', async () => {
    const { data } = await agent.com.atproto.server.createAppPassword({ name: 'client' });
    const app = new AtpAgent({ service: pds.url });
    await app.login({ identifier: 'erin.test', password: data.password });
    assert.equal((await app.com.atproto.server.getSession()).data.did, agent.session!.did);
  });

  it('turns off again', async () => {
    await agent.com.atproto.server.requestEmailUpdate();
    const token = tokenFromMail(mailbox, 'erin@example.com');
    await agent.com.atproto.server.updateEmail({ email: 'erin@example.com', emailAuthFactor: false, token });
    await new AtpAgent({ service: pds.url }).login({ identifier: 'erin.test', password });
  });
});
