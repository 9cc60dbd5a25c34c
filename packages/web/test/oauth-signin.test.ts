/**
 * Signing in to the old server with atproto OAuth instead of the password, in Chromium: the
 * wizard (served by Portage on 127.0.0.1, so the atproto loopback client) opens the reference
 * PDS's own authorization page in a window, where the user signs in and allows the move; the
 * move then runs on that DPoP-bound session, and is checked from outside as the other wizard
 * tests do. A refused consent comes back as a sentence, with nothing changed; access revoked on
 * the server's account page mid-move asks for a new sign-in, after which the move finishes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type Account, checkMigrated, createAccount, snapshot } from '../../migrate/test/helpers/network.ts';
import { checkAccessible, skipWithoutChromium } from '../../../test/support/browser.ts';
import { startWizardWorld, type WizardWorld } from './wizard-world.ts';

const skip = skipWithoutChromium('the OAuth sign-in tests');

describe('signing in to the old server with OAuth, in Chromium', { skip }, () => {
  let world: WizardWorld;

  before(async () => {
    world = await startWizardWorld();
  });

  after(async () => {
    await world?.close();
  });

  /** Who-you-are with the account's DID, up to the sign-in screen and its OAuth offer. */
  async function toSignIn(page: Page, account: Account): Promise<void> {
    await world.heading(page, 'Who you are');
    await page.getByLabel('Handle or DID').fill(account.did);
    await page.getByRole('button', { name: 'Continue' }).click();
    await world.heading(page, 'Sign in to your current server');
    await page.getByRole('button', { name: 'Sign in with your server' }).waitFor();
  }

  /** Presses the offer with the keyboard and returns the authorization window it opened. */
  async function openAuthorization(page: Page): Promise<Page> {
    const [popup] = await Promise.all([
      page.waitForEvent('popup'),
      (async () => {
        await page.getByRole('button', { name: 'Sign in with your server' }).focus();
        await page.keyboard.press('Enter');
      })(),
    ]);
    popup.on('pageerror', (err) => world.pageProblems.push(`sign-in window error: ${err.message}`));
    return popup;
  }

  /** On Portage's authorization page: the handle and password there, then the consent screen. */
  async function signInOnPortage(popup: Page, account: Account): Promise<void> {
    const handle = popup.getByLabel('Handle');
    await handle.waitFor({ timeout: 30_000 });
    if (!(await handle.inputValue())) await handle.fill(account.handle);
    await popup.getByLabel('Password').fill(account.password);
    await popup.getByRole('button', { name: 'Sign in' }).click();
    await popup.getByRole('button', { name: 'Authorize' }).waitFor({ timeout: 30_000 });
  }

  /** On the reference's authorization page: the password there, then the consent screen. */
  async function signInThere(popup: Page, account: Account): Promise<void> {
    const password = popup.getByLabel('Password', { exact: true });
    await password.waitFor({ timeout: 30_000 });
    await password.fill(account.password);
    await popup.getByRole('button', { name: 'Sign in' }).click();
    await popup.getByRole('button', { name: 'Authorize' }).waitFor({ timeout: 30_000 });
  }

  it('moves an account signed in on the old server itself; the wizard never sees the password', async () => {
    const from = world.net.pdses[0]!;
    const carol = await createAccount(from, 'carol', { records: 12, blobs: 2, blobSize: 20_000 });
    const before = await snapshot(from, carol);
    const page = await world.openWizard();
    // Every password sign-in the page makes to the old server, to show there is none.
    const passwordSignIns: string[] = [];
    page.context().on('request', (req) => {
      if (req.url().startsWith(`${from.url}/xrpc/com.atproto.server.createSession`)) passwordSignIns.push(req.url());
    });

    await toSignIn(page, carol);
    await world.shot(page, 'oauth-1-signin');
    await checkAccessible(page, 'sign in with your server');
    await page.setViewportSize({ width: 360, height: 740 });
    await world.shot(page, 'oauth-1-signin-360');
    assert.equal(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      true,
      'no sideways scrolling at 360 px',
    );
    await page.setViewportSize({ width: 390, height: 844 });

    const popup = await openAuthorization(page);
    await page.getByText('Finish signing in in the window that opened').waitFor();
    await world.shot(page, 'oauth-2-waiting');
    await checkAccessible(page, 'waiting for the sign-in window');
    await signInThere(popup, carol);
    await popup.screenshot({
      path: `${process.env.PORTAGE_WIZARD_SHOTS ?? `${import.meta.dirname}/../test-output`}/oauth-3-consent.png`,
    });
    await popup.getByRole('button', { name: 'Authorize' }).click();

    await world.fillNewAccount(page, carol, 'carol.portage.test');
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await world.heading(page, 'Everything arrived');
    await page.getByRole('button', { name: 'Continue' }).click();
    await world.heading(page, 'Point your identity at the new server');
    await page.getByLabel('Confirmation code').fill(await world.newPlcToken(carol.did));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await world.heading(page, 'Done');
    await page.getByText('the new account is active and the old one is deactivated').waitFor();
    await page.getByText('Check your birth date in your app').waitFor();
    await world.shot(page, 'oauth-4-done');

    await world.checkMoved(carol, before, 'carol.portage.test');
    assert.deepEqual(passwordSignIns, [], 'the page never signed in to the old server with a password');
    await page.context().close();
    assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it('a refused consent says so in a sentence, and changes nothing', async () => {
    const from = world.net.pdses[0]!;
    const erin = await createAccount(from, 'erin', { records: 3, blobs: 0 });
    const page = await world.openWizard();
    await toSignIn(page, erin);
    // A window closed before finishing: pressing the button again starts a new sign-in.
    const closed = await openAuthorization(page);
    await closed.getByLabel('Password', { exact: true }).waitFor({ timeout: 30_000 });
    await closed.close();
    const popup = await openAuthorization(page);
    await signInThere(popup, erin);
    await popup.getByRole('button', { name: 'Deny access' }).click();

    const refusal = page.getByRole('alert');
    await refusal.getByText('was refused or cancelled').waitFor({ timeout: 30_000 });
    assert.match(
      await refusal.innerText(),
      /nothing was changed\. To move the account, press Sign in with your server to try again, or use your password below\./,
    );
    await world.heading(page, 'Sign in to your current server');
    await world.shot(page, 'oauth-5-refused');
    await checkAccessible(page, 'refused consent');
    const status = await fetch(`${world.portage.url}/xrpc/com.atproto.sync.getRepoStatus?did=${erin.did}`);
    assert.equal(status.status, 400, 'no account was created on Portage');
    assert.equal(await world.plcDocumentPds(erin.did), from.url, 'the identity did not change');
    // The password stays the way in.
    await page.getByLabel('Password', { exact: true }).fill(erin.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await world.heading(page, 'Your new account');
    await page.context().close();
    assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it('another account chosen on the server is refused, its tokens revoked, and nothing changes', async () => {
    const from = world.net.pdses[0]!;
    const gina = await createAccount(from, 'gina', { records: 2, blobs: 0 });
    const hank = await createAccount(from, 'hank', { records: 1, blobs: 0 });
    const page = await world.openWizard();
    // The reference fixes the account to the login hint; without one, its page lets the user
    // choose any account, as a person signed in elsewhere might.
    await page.context().route(`${from.url}/oauth/par`, async (route) => {
      const form = new URLSearchParams(route.request().postData() ?? '');
      form.delete('login_hint');
      await route.continue({ postData: form.toString() });
    });
    const revocations: string[] = [];
    page.context().on('request', (req) => {
      if (req.url() === `${from.url}/oauth/revoke`) revocations.push(req.url());
    });
    await toSignIn(page, gina);
    const popup = await openAuthorization(page);
    await popup.getByRole('button', { name: 'Sign in' }).click({ timeout: 30_000 });
    await popup.locator('input[name="username"]').fill(hank.handle);
    await signInThere(popup, hank);
    await popup.getByRole('button', { name: 'Authorize' }).click();

    const refusal = page.getByRole('alert');
    await refusal.getByText('as another account').waitFor({ timeout: 30_000 });
    assert.match(
      await refusal.innerText(),
      /press Sign in with your server and sign in there as gina\.test, or use your password below\.$/,
    );
    await world.shot(page, 'oauth-6-wrong-account');
    assert.equal(revocations.length, 1, "the other account's tokens were revoked");
    const status = await fetch(`${world.portage.url}/xrpc/com.atproto.sync.getRepoStatus?did=${gina.did}`);
    assert.equal(status.status, 400, 'no account was created on Portage');
    await page.context().close();
    assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it('access revoked on the old server mid-move: the page asks to sign in again, then finishes the move', async () => {
    const from = world.net.pdses[0]!;
    const dora = await createAccount(from, 'dora', { records: 8, blobs: 2, blobSize: 20_000 });
    const before = await snapshot(from, dora);
    const page = await world.openWizard();
    await toSignIn(page, dora);
    let popup = await openAuthorization(page);
    await signInThere(popup, dora);
    await popup.getByRole('button', { name: 'Authorize' }).click();
    await world.fillNewAccount(page, dora, 'dora.portage.test');
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await world.heading(page, 'Everything arrived');
    const firstCode = await world.newPlcToken(dora.did);

    // The user takes the move's access back on the old server's own account page.
    const account = await page.context().newPage();
    await account.goto(`${from.url}/account`);
    await account.getByRole('button', { name: 'Sign in' }).click();
    await account.locator('input[name="username"]').fill(dora.handle);
    await account.getByLabel('Password', { exact: true }).fill(dora.password);
    await account.getByRole('button', { name: 'Sign in' }).click();
    await account.getByRole('link', { name: /^Apps/ }).click();
    await account.getByRole('button', { name: 'Details' }).click();
    await account.getByRole('button', { name: 'Revoke access' }).click();
    await account.getByText('Successfully revoked access').waitFor({ timeout: 30_000 });
    await account.close();

    // The identity update needs the old server: the page says to sign in again, and keeps what was done.
    await page.getByRole('button', { name: 'Continue' }).click();
    await world.heading(page, 'Point your identity at the new server');
    await page.getByLabel('Confirmation code').fill(firstCode);
    await page.getByRole('button', { name: 'Confirm' }).click();
    const alert = page.getByRole('alert');
    await alert.getByText('no longer accepts the sign-in').waitFor({ timeout: 60_000 });
    await world.heading(page, 'Sign in to your current server');
    assert.match(await alert.innerText(), /What was done so far is kept/);
    await world.shot(page, 'oauth-7-signed-out');
    await checkAccessible(page, 'signed out mid-move');
    assert.equal(await world.plcDocumentPds(dora.did), from.url, 'the identity did not move');

    popup = await openAuthorization(page);
    await signInThere(popup, dora);
    await popup.getByRole('button', { name: 'Authorize' }).click();
    await world.heading(page, 'Your new account');
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await world.heading(page, 'Everything arrived');
    await page.getByRole('button', { name: 'Continue' }).click();
    await world.heading(page, 'Point your identity at the new server');
    await page.getByLabel('Confirmation code').fill(await world.newPlcToken(dora.did, firstCode));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await world.heading(page, 'Done');
    await world.checkMoved(dora, before, 'dora.portage.test');
    await page.context().close();
    assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it("moves an account away from Portage, signed in on Portage's own authorization page, into a reference PDS", async () => {
    const portage = world.portage;
    const to = world.net.pdses[0]!;
    const fay = await createAccount(portage, 'fay.portage', { records: 10, blobs: 2, blobSize: 20_000 });
    const before = await snapshot(portage as never, fay);
    const site = await world.serveStaticBuild();
    try {
      const page = await world.openWizard();
      const passwordSignIns: string[] = [];
      page.context().on('request', (req) => {
        if (req.url().includes('/xrpc/com.atproto.server.createSession')) passwordSignIns.push(req.url());
      });
      await page.goto(site.url);
      await toSignIn(page, fay);
      const popup = await openAuthorization(page);
      await signInOnPortage(popup, fay);
      await popup.screenshot({
        path: `${process.env.PORTAGE_WIZARD_SHOTS ?? `${import.meta.dirname}/../test-output`}/oauth-8-portage-consent.png`,
      });
      await popup.getByRole('button', { name: 'Authorize' }).click();

      await world.heading(page, 'Your new account');
      await page.getByLabel('New PDS').fill(to.url);
      await page.getByLabel('New handle').fill('fay.test');
      await page.getByLabel('Email').fill('fay@example.com');
      await page.getByLabel('New password').fill(fay.password);
      await page.getByRole('button', { name: 'Start transfer' }).click();
      await world.heading(page, 'Everything arrived');
      await page.getByRole('button', { name: 'Continue' }).click();
      await world.heading(page, 'Point your identity at the new server');
      const code = await world.portagePlcToken(fay.did);
      await page.getByLabel('Confirmation code').fill(code);
      await page.getByRole('button', { name: 'Confirm' }).click();
      await world.heading(page, 'Done');
      await page.getByText('the new account is active and the old one is deactivated').waitFor();
      await world.shot(page, 'oauth-9-away-from-portage-done');

      // Checked from outside: the reference holds it all, the identity names it, Portage's copy is deactivated.
      await checkMigrated(world.net, portage as never, to, fay, before);
      assert.deepEqual(
        passwordSignIns.filter((url) => url.startsWith(portage.url) || url.startsWith(portage.publicUrl)),
        [],
        'no password sign-in to Portage',
      );
      await page.context().close();
      assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
    } finally {
      await site.close();
    }
  });
});
