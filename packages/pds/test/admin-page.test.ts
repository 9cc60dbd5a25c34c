/**
 * The admin page (/admin) in a real browser (Debian's Chromium through playwright-core): a wrong
 * password refused and logged without the password, sign-in, finding an account by search, its
 * takedown (sign-in then refused through @atproto/api) and restore, invite codes, sign-out; each
 * page checked with axe-core and for sideways scrolling on a phone, and photographed for people.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import type { Browser, Page } from 'playwright-core';
import { checkAccessible as checkPage, launchChromium, skipWithoutChromium } from '../../../test/support/browser.ts';
import { createLogger } from '../src/logger.ts';
import { startTestPds, type TestPds } from './harness.ts';

/** Screenshots of each page, for people to look at (gitignored). */
const SHOTS = join(import.meta.dirname, '..', 'test-output');
const skip = skipWithoutChromium('the admin page tests');
const WRONG_PASSWORD = 'not-the-admin-password-4711';

describe('the admin page in Chromium', { skip }, () => {
  let pds: TestPds;
  let browser: Browser;
  let page: Page;
  const log: string[] = [];
  const accounts: { handle: string; email: string; password: string; did?: string }[] = [
    { handle: 'alice.test', email: 'alice@example.com', password: 'alice password' },
    { handle: 'bob.test', email: 'bob@example.com', password: 'bob password' },
    { handle: 'carol.test', email: 'carol@example.org', password: 'carol password' },
  ];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        log.push(chunk.toString('utf8'));
        done();
      },
    });
    pds = await startTestPds({ logger: createLogger('info', sink) });
    for (const account of accounts) {
      const agent = new AtpAgent({ service: pds.url });
      await agent.createAccount({ handle: account.handle, email: account.email, password: account.password });
      account.did = agent.session!.did;
    }
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  });

  after(async () => {
    await browser?.close();
    await pds?.close();
  });

  /** The shared page checks, then a screenshot for people to look at. */
  async function checkAccessible(name: string): Promise<void> {
    await checkPage(page, name);
    await page.screenshot({ path: join(SHOTS, `admin-${name}.png`), fullPage: true });
  }

  async function signInAs(handle: string, password: string): Promise<unknown> {
    const agent = new AtpAgent({ service: pds.url });
    try {
      await agent.login({ identifier: handle, password });
      return undefined;
    } catch (err) {
      return err;
    }
  }

  it('refuses a wrong admin password with a sentence and a 401, and logs the attempt without it', async () => {
    const response = await page.goto(`${pds.url}/admin`);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    assert.doesNotMatch(response?.headers()['content-security-policy'] ?? '', /script-src/);
    await checkAccessible('sign-in');
    await page.getByLabel('Admin password').fill(WRONG_PASSWORD);
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/admin/sign-in')),
      page.getByRole('button', { name: 'Sign in' }).press('Enter'),
    ]);
    assert.equal(refused.status(), 401);
    await page.getByRole('alert').filter({ hasText: 'not the admin password' }).waitFor();
    await checkAccessible('sign-in-refused');
    const text = log.join('');
    assert.match(text, /admin page sign-in refused/);
    const line = log.find((l) => l.includes('admin page sign-in refused'))!;
    assert.match(JSON.parse(line).ip as string, /127\.0\.0\.1/);
    assert.ok(!text.includes(WRONG_PASSWORD), 'the log holds the wrong password');
    assert.deepEqual(await page.context().cookies(), [], 'a refused sign-in sets no cookie');
  });

  it('signs in with the keyboard alone, with a session cookie that is not the password', async () => {
    await page.goto(`${pds.url}/admin`);
    await page.getByLabel('Admin password').focus();
    await page.keyboard.type(pds.ctx.config.adminPassword);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const [cookie] = await page.context().cookies();
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.notEqual(cookie.value, pds.ctx.config.adminPassword);
    assert.ok(!cookie.value.includes(pds.ctx.config.adminPassword));
    await page.getByText('Active accounts').waitFor();
    await checkAccessible('overview');
  });

  it('finds an account by email or handle prefix', async () => {
    await page.getByLabel('Handle or email starts with').fill('carol@');
    await page.getByLabel('Handle or email starts with').press('Enter');
    await page.waitForURL(/q=carol/);
    const links = page.getByRole('list').getByRole('link');
    assert.deepEqual(await links.allTextContents(), ['carol.test']);
    await page.getByLabel('Handle or email starts with').fill('bob');
    await page.getByLabel('Handle or email starts with').press('Enter');
    await page.waitForURL(/q=bob/);
    assert.deepEqual(await page.getByRole('list').getByRole('link').allTextContents(), ['bob.test']);
    await checkAccessible('search');
  });

  it('takes the account down (its sign-in refused) and restores it (sign-in works again)', async () => {
    const bob = accounts[1]!;
    await page.getByRole('link', { name: 'bob.test' }).click();
    await page.getByRole('heading', { level: 1, name: 'bob.test' }).waitFor();
    await page.getByText('Signed-in sessions').waitFor();
    await checkAccessible('account');
    await page.getByRole('button', { name: 'Take down account' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'Account taken down.' }).waitFor();
    await checkAccessible('account-taken-down');
    assert.ok(pds.ctx.accountManager.getAccount(bob.did!)!.takedownRef);
    const refused = (await signInAs(bob.handle, bob.password)) as { error?: string } | undefined;
    assert.equal(refused?.error, 'AccountTakedown');

    await page.getByRole('button', { name: 'Restore account' }).click();
    await page.getByRole('status').filter({ hasText: 'Account restored.' }).waitFor();
    assert.equal(pds.ctx.accountManager.getAccount(bob.did!)!.takedownRef, null);
    assert.equal(await signInAs(bob.handle, bob.password), undefined);
  });

  it('pages through accounts found by prefix, with LIKE wildcards taken literally', () => {
    const manager = pds.ctx.accountManager;
    const all = manager.findAccounts({ query: '', limit: 10 }).map((a) => a.did);
    assert.equal(all.length, 3);
    const paged: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = manager.findAccounts({ query: '', limit: 2, cursor });
      paged.push(...page.map((a) => a.did));
      if (page.length < 2) break;
      cursor = page.at(-1)!.did;
    }
    assert.deepEqual(paged, all);
    assert.deepEqual(
      manager.findAccounts({ query: 'ALICE', limit: 10 }).map((a) => a.handle),
      ['alice.test'],
    );
    assert.deepEqual(manager.findAccounts({ query: '%', limit: 10 }), []);
    assert.deepEqual(manager.findAccounts({ query: '_lice', limit: 10 }), []);
  });

  it('refuses a form without the session token', async () => {
    const cookies = await page.context().cookies();
    const res = await fetch(`${pds.url}/admin/account/takedown`, {
      method: 'POST',
      headers: {
        cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; '),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ did: accounts[0]!.did!, csrf: 'wrong' }).toString(),
    });
    assert.equal(res.status, 403);
    assert.equal(pds.ctx.accountManager.getAccount(accounts[0]!.did!)!.takedownRef, null);
  });

  it('creates and lists invite codes, and signs out', async () => {
    await page.getByRole('link', { name: 'Invite codes' }).click();
    await page.getByRole('heading', { level: 1, name: 'Invite codes' }).waitFor();
    await page.getByLabel('Uses').fill('3');
    await page.getByRole('button', { name: 'Create invite code' }).click();
    const notice = page.getByRole('status').filter({ hasText: 'New code' });
    await notice.waitFor();
    const code = (await notice.locator('code').textContent())!;
    assert.match(code, /^[a-z0-9-]+$/i);
    assert.match((await page.getByRole('list').textContent())!, new RegExp(`${code}\\s+3 left`));
    await checkAccessible('invites');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    const res = await page.goto(`${pds.url}/admin/account?did=${encodeURIComponent(accounts[0]!.did!)}`);
    assert.equal(new URL(res!.url()).pathname, '/admin');
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  });

  // Last: it locks this address out of the page.
  it('stops taking passwords from an address after ten wrong ones, even the right one', async () => {
    const signIn = (password: string) =>
      fetch(`${pds.url}/admin/sign-in`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ password }).toString(),
        redirect: 'manual',
      });
    // One wrong password was tried by the first test.
    for (let i = 0; i < 9; i++) assert.equal((await signIn(`${WRONG_PASSWORD}${i}`)).status, 401);
    const locked = await signIn(pds.ctx.config.adminPassword);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    assert.match(await locked.text(), /Too many wrong passwords from your address\. Try again in 15 minutes\./);
    assert.equal(locked.headers.get('set-cookie'), null, 'no session');
  });
});
