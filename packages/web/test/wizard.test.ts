/**
 * The wizard in a real browser (Debian's Chromium through playwright-core), on the page Portage
 * serves at /migrate/, moving accounts from a reference PDS (dev-env) into Portage through the UI.
 * What moved is then checked from outside, the way the CLI tests do: records from the verified
 * CAR, every blob, preferences, the PLC document, and both accounts' status.
 *
 * The page is built for this file into its temporary folder (PORTAGE_WEB_DIST), so it tests the
 * current source and never races another test reading packages/web/dist.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { TestPds as PortagePds } from '../../pds/test/harness.ts';
import {
  type Account,
  createAccount,
  type Network,
  type Snapshot,
  snapshot,
} from '../../migrate/test/helpers/network.ts';

import { checkAccessible, skipWithoutChromium } from '../../../test/support/browser.ts';
import { until } from '../../../test/support/until.ts';
import { startWizardWorld, type WizardWorld } from './wizard-world.ts';
const skip = skipWithoutChromium('the wizard tests');

describe('the migration wizard in Chromium', { skip }, () => {
  let world: WizardWorld;
  let dir: string;
  let net: Network;
  let portage: PortagePds;
  let txt: Record<string, string[]>;
  let pageProblems: string[];

  before(async () => {
    world = await startWizardWorld();
    ({ dir, net, portage, txt, pageProblems } = world);
  });

  after(async () => {
    await world?.close();
  });

  const openWizard = (opts?: { noOpfs?: boolean; noIndexedDb?: boolean }) => world.openWizard(opts);
  const shot = (page: Page, name: string) => world.shot(page, name);
  const heading = (page: Page, text: string) => world.heading(page, text);
  const fillNewAccount = (page: Page, account: Account, newHandle: string) =>
    world.fillNewAccount(page, account, newHandle);
  const checkMoved = (account: Account, before: Snapshot, newHandle: string) =>
    world.checkMoved(account, before, newHandle);
  const plcDocumentPds = (did: string) => world.plcDocumentPds(did);
  const newPlcToken = (did: string, previous?: string) => world.newPlcToken(did, previous);

  /**
   * Downloads the backup from the done screen, unpacks it with tar and reads it the way the
   * recovery tools do (DirectoryBackup): the repository, each blob with its type, the preferences.
   */
  async function checkDownloadedBackup(page: Page, account: Account, before: Snapshot): Promise<void> {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download the backup' }).click(),
    ]);
    const tar = join(dir, `${account.handle}.tar`);
    await download.saveAs(tar);
    const out = join(dir, `${account.handle}-unpacked`);
    mkdirSync(out);
    const unpack = spawnSync('tar', ['-xf', tar, '-C', out], { encoding: 'utf8' });
    assert.equal(unpack.status, 0, `tar could not unpack the backup: ${unpack.stderr}`);
    const folder = join(out, download.suggestedFilename().replace(/\.tar$/, ''));
    const { DirectoryBackup } = await import('@portage/migrate/backup.node');
    const backup = await new DirectoryBackup(folder, account.did).open();
    assert.ok(await backup.repoCommit(), 'the manifest names the commit');
    assert.deepEqual((await backup.blobCids()).sort(), [...account.blobCids].sort(), 'every blob is in the backup');
    for (const cid of account.blobCids) assert.equal(await backup.blobContentType(cid), 'image/jpeg');
    const { verifyRepoCar } = await import('@atproto/repo');
    const car = new Uint8Array(await (await backup.readRepo())!.arrayBuffer());
    const repo = await verifyRepoCar(car, account.did);
    assert.equal(repo.creates.length, before.records.size, 'the backup holds every record');
    const prefs = JSON.parse(readFileSync(join(folder, 'preferences.json'), 'utf8')) as { preferences: unknown[] };
    assert.deepEqual(prefs.preferences, before.preferences);
  }

  it('moves an account through every step; a wrong password and a wrong code change nothing', async () => {
    const from = net.pdses[0]!;
    const alice = await createAccount(from, 'alice', { records: 40, blobs: 4, blobSize: 60_000 });
    txt[`_atproto.${alice.handle}`] = [`did=${alice.did}`];
    const before = await snapshot(from, alice);
    const page = await openWizard();

    await heading(page, 'Who you are');
    // The first two steps by keyboard alone: focus starts on the heading, Tab reaches the field, Enter submits.
    await page.keyboard.press('Tab');
    await page.keyboard.type(alice.handle);
    await shot(page, '1-who');
    await checkAccessible(page, 'who you are');
    await page.keyboard.press('Enter');

    await heading(page, 'Sign in to your current server');
    await page.getByText(from.url).waitFor();
    // The old server offers OAuth (oauth-signin.test.ts takes that way): its button comes first,
    // then the password field.
    await page.getByRole('button', { name: 'Sign in with your server' }).waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.type('not-the-password');
    assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), 'not-the-password');
    await shot(page, '2-signin');
    await checkAccessible(page, 'sign in');
    await page.keyboard.press('Enter');

    await fillNewAccount(page, alice, 'alice.portage.test');
    await page.getByText('needs no invite code').waitFor();
    await shot(page, '3-account');
    await checkAccessible(page, 'the new account');
    // The export is public: it is in the browser's backup before the transfer starts.
    const { cid: oldCommit } = (await (
      await fetch(`${from.url}/xrpc/com.atproto.sync.getLatestCommit?did=${alice.did}`)
    ).json()) as { cid: string };
    const early = await until('the repository in the backup before the transfer', async () => {
      const manifest = await page.evaluate(
        async (folder) => {
          try {
            let dir = await navigator.storage.getDirectory();
            for (const name of folder.split('/')) dir = await dir.getDirectoryHandle(name);
            const text = await (await (await dir.getFileHandle('manifest.json')).getFile()).text();
            const car = await (await dir.getFileHandle('repo.car')).getFile();
            return { ...(JSON.parse(text) as { repoCommit?: string }), carBytes: car.size };
          } catch {
            return undefined;
          }
        },
        `backups/${alice.did.replace(/[^a-zA-Z0-9.-]/g, '_')}`,
      );
      return manifest?.repoCommit ? manifest : undefined;
    });
    assert.equal(early.repoCommit, oldCommit);
    assert.ok(early.carBytes > 0);
    await page.setViewportSize({ width: 360, height: 740 });
    await shot(page, '3-account-360');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('button', { name: 'Start transfer' }).click();

    // The wrong password: back to signing in, with a sentence saying what to do.
    await heading(page, 'Sign in to your current server');
    const refusal = await page.getByRole('alert').innerText();
    assert.match(
      refusal,
      /did not accept that password\. Check the password of your account there and press Continue\./,
    );
    assert.doesNotMatch(refusal, /--|PORTAGE_|at .*\.ts/);
    await shot(page, '2-signin-wrong-password');
    const status = await fetch(`${portage.url}/xrpc/com.atproto.sync.getRepoStatus?did=${alice.did}`);
    assert.equal(status.status, 400, 'no account was created on Portage');
    assert.equal(await plcDocumentPds(alice.did), from.url);

    await page.getByLabel('Password', { exact: true }).fill(alice.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Your new account');
    assert.equal(await page.getByLabel('New handle').inputValue(), 'alice.portage.test', 'the form kept its values');
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await heading(page, 'Moving your data');
    await shot(page, '4-transfer');
    await checkAccessible(page, 'transfer');

    await heading(page, 'Everything arrived');
    // Progress went to screen readers through the polite live region.
    const live = page.locator('[role="status"][aria-live="polite"]');
    assert.match(await live.innerText(), /: (done|started)\.$/);
    await shot(page, '5-verify');
    await checkAccessible(page, 'verification');
    // The recovery key, offered by default, is shown here, before the identity update.
    const keyDid = (await page.locator('.recovery .mono', { hasText: 'did:key:' }).innerText()).trim();
    assert.match(keyDid, /^did:key:z/);
    await page.getByRole('button', { name: 'Continue' }).click();

    await heading(page, 'Point your identity at the new server');
    const first = await newPlcToken(alice.did);
    await shot(page, '6-identity');
    await checkAccessible(page, 'identity');
    await page.getByLabel('Confirmation code').fill('AAAAA-BBBBB');
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('did not accept that code').waitFor({ timeout: 60_000 });
    assert.equal(await plcDocumentPds(alice.did), from.url, 'the identity did not change');
    await shot(page, '6-identity-wrong-code');
    const second = await newPlcToken(alice.did, first);
    await page.getByLabel('Confirmation code').fill(second);
    await page.getByRole('button', { name: 'Confirm' }).click();

    await heading(page, 'Done');
    await page.getByText('the new account is active and the old one is deactivated').waitFor();
    await shot(page, '7-done');
    await checkAccessible(page, 'done');
    await page.setViewportSize({ width: 360, height: 740 });
    await shot(page, '7-done-360');
    await checkMoved(alice, before, 'alice.portage.test');
    const plcData = (await (await fetch(`${net.plc.url}/${alice.did}/data`)).json()) as { rotationKeys: string[] };
    assert.equal(plcData.rotationKeys[0], keyDid, "the user's recovery key comes first in the rotation keys");
    await checkDownloadedBackup(page, alice, before);
    await page.context().close();
    assert.deepEqual(pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it('asks for the emailed sign-in code, and keeps journal and backup in IndexedDB when OPFS is missing', async () => {
    const from = net.pdses[0]!;
    const dave = await createAccount(from, 'dave', { records: 15, blobs: 3, blobSize: 30_000 });
    const before = await snapshot(from, dave);
    const page = await openWizard({ noOpfs: true });
    // The old server wants an emailed code with the password, as Bluesky's entryway does.
    await page.context().route(`${from.url}/xrpc/com.atproto.server.createSession`, async (route) => {
      const req = route.request();
      const body = req.method() === 'POST' ? (req.postDataJSON() as { authFactorToken?: string }) : undefined;
      if (body && body.authFactorToken !== 'CODE-12345') {
        await route.fulfill({
          status: 401,
          headers: { 'access-control-allow-origin': '*' },
          contentType: 'application/json',
          body: JSON.stringify({
            error: 'AuthFactorTokenRequired',
            message: 'A sign in code has been sent to your email',
          }),
        });
        return;
      }
      await route.continue();
    });

    await page.getByLabel('Handle or DID').fill(dave.did);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Password', { exact: true }).fill(dave.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await fillNewAccount(page, dave, 'dave.portage.test');
    await page.getByText('IndexedDB').waitFor();
    await page.getByRole('button', { name: 'Start transfer' }).click();

    await heading(page, 'Sign in to your current server');
    await page.getByText('emailed you a sign-in code').waitFor();
    await shot(page, '2-signin-code');
    await checkAccessible(page, 'the sign-in code');
    await page.getByLabel('Confirmation code').fill('CODE-12345');
    await page.getByRole('button', { name: 'Continue' }).click();

    await heading(page, 'Everything arrived');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Confirmation code').fill(await newPlcToken(dave.did));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await heading(page, 'Done');
    const stored = await page.evaluate(
      () =>
        new Promise<string[]>((resolve, reject) => {
          const req = indexedDB.open('portage-wizard');
          req.onsuccess = () => {
            const keys = req.result.transaction('files').objectStore('files').getAllKeys();
            keys.onsuccess = () => resolve(keys.result.map(String));
            keys.onerror = () => reject(keys.error);
          };
          req.onerror = () => reject(req.error);
        }),
    );
    assert.equal(
      stored.filter((k) => k.includes('/blobs/')).length,
      dave.blobCids.length,
      'the backup holds each blob',
    );
    assert.ok(
      stored.some((k) => k.endsWith('/repo.car')),
      'the backup holds the repository',
    );
    assert.ok(
      stored.some((k) => k.startsWith('journal/')),
      'the journal is there',
    );
    await checkMoved(dave, before, 'dave.portage.test');
    await checkDownloadedBackup(page, dave, before);
    await page.getByRole('button', { name: 'Delete the copy in this browser' }).click();
    await page.getByText('The copy in this browser is deleted.', { exact: true }).first().waitFor();
    const left = await page.evaluate(
      () =>
        new Promise<number>((resolve, reject) => {
          const req = indexedDB.open('portage-wizard');
          req.onsuccess = () => {
            const keys = req.result.transaction('files').objectStore('files').getAllKeys();
            keys.onsuccess = () => resolve(keys.result.filter((k) => String(k).startsWith('backups/')).length);
            keys.onerror = () => reject(keys.error);
          };
          req.onerror = () => reject(req.error);
        }),
    );
    assert.equal(left, 0, 'nothing of the backup is left in the browser');
    await page.context().close();
  });

  it('without OPFS and IndexedDB moves straight from server to server, a large blob included', async () => {
    const from = net.pdses[0]!;
    // Larger than the engine holds in memory: its upload is a stream, which the browser cannot
    // send over HTTP/1.1, so it goes as a Blob.
    const fay = await createAccount(from, 'fay', { records: 15, blobs: 1, blobSize: 4_400_000 });
    const before = await snapshot(from, fay);
    const page = await openWizard({ noOpfs: true, noIndexedDb: true });
    await page.getByLabel('Handle or DID').fill(fay.did);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Password', { exact: true }).fill(fay.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await fillNewAccount(page, fay, 'fay.portage.test');
    await page.getByText('progress only, no backup').waitFor();
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await heading(page, 'Everything arrived');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Confirmation code').fill(await newPlcToken(fay.did));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await heading(page, 'Done');
    assert.ok(
      await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('portage-wizard:'))),
      'the journal is in localStorage',
    );
    await checkMoved(fay, before, 'fay.portage.test');
    await page.context().close();
  });

  it('a reload in the middle of the blob phase offers to resume, and the move finishes verified', async () => {
    const from = net.pdses[0]!;
    const bob = await createAccount(from, 'bob', { records: 20, blobs: 12, blobSize: 50_000 });
    txt[`_atproto.${bob.handle}`] = [`did=${bob.did}`];
    const before = await snapshot(from, bob);
    const page = await openWizard();
    // Uploads are slowed down so that the reload lands while blobs are still moving.
    let uploads = 0;
    await page.context().route('**/xrpc/com.atproto.repo.uploadBlob', async (route) => {
      uploads++;
      await new Promise((r) => setTimeout(r, 400));
      await route.continue().catch(() => {});
    });

    await page.getByLabel('Handle or DID').fill(bob.did);
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Sign in to your current server');
    await page.getByLabel('Password', { exact: true }).fill(bob.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await fillNewAccount(page, bob, 'bob.portage.test');
    await page.getByRole('button', { name: 'Start transfer' }).click();
    await page.locator('.phase.running', { hasText: 'Copy the blobs' }).waitFor({ timeout: 60_000 });
    while (uploads < 3) await new Promise((r) => setTimeout(r, 50));
    await shot(page, '4-transfer-blobs');
    await page.reload();

    await heading(page, 'Who you are');
    const resume = page.getByRole('button', { name: `Resume moving ${bob.handle}` });
    await resume.waitFor();
    await shot(page, '1-who-resume');
    await page.context().unrouteAll({ behavior: 'ignoreErrors' });
    await page.context().route(
      (url) => !['127.0.0.1', 'localhost'].includes(url.hostname),
      (route) => route.abort(),
    );
    await resume.click();
    await heading(page, 'Sign in to your current server');
    await page.getByLabel('Password', { exact: true }).fill(bob.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Your new account');
    assert.equal(await page.getByLabel('New handle').inputValue(), 'bob.portage.test', 'the handle was remembered');
    await page.getByLabel('New password').fill(`${bob.password}-new`);
    await page.getByRole('button', { name: 'Start transfer' }).click();

    await heading(page, 'Everything arrived');
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Point your identity at the new server');
    await page.getByLabel('Confirmation code').fill(await newPlcToken(bob.did));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await heading(page, 'Done');
    await checkMoved(bob, before, 'bob.portage.test');
    await page.context().close();
  });

  it('a second tab on the same account is refused while the first one moves it', async () => {
    const from = net.pdses[0]!;
    const carol = await createAccount(from, 'carol', { records: 10, blobs: 6, blobSize: 40_000 });
    const page = await openWizard();
    await page.context().route('**/xrpc/com.atproto.repo.uploadBlob', async (route) => {
      await new Promise((r) => setTimeout(r, 1000));
      await route.continue().catch(() => {});
    });
    const startMove = async (p: Page) => {
      await p.getByLabel('Handle or DID').fill(carol.did);
      await p.getByRole('button', { name: 'Continue' }).click();
      await p.getByLabel('Password', { exact: true }).fill(carol.password);
      await p.getByRole('button', { name: 'Continue' }).click();
      await fillNewAccount(p, carol, 'carol.portage.test');
      await p.getByRole('button', { name: 'Start transfer' }).click();
    };
    await startMove(page);
    await page.locator('.phase.running', { hasText: 'Copy the blobs' }).waitFor({ timeout: 60_000 });
    const second = await page.context().newPage();
    await second.goto(`${portage.url}/migrate/`);
    await startMove(second);
    await second.getByRole('alert').getByText('being moved in another tab').waitFor({ timeout: 30_000 });
    await shot(second, '2-signin-second-tab');
    await page.context().close();
  });

  it('the static build targets the PDS named in its New PDS field', async () => {
    const from = net.pdses[0]!;
    const erin = await createAccount(from, 'erin', { records: 12, blobs: 2, blobSize: 30_000 });
    const before = await snapshot(from, erin);
    const site = await world.serveStaticBuild();
    try {
      const page = await openWizard();
      await page.goto(site.url);
      await heading(page, 'Who you are');
      await page.getByLabel('Handle or DID').fill(erin.did);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Password', { exact: true }).fill(erin.password);
      await page.getByRole('button', { name: 'Continue' }).click();
      await heading(page, 'Your new account');
      await page.getByLabel('New PDS').fill(portage.url);
      await fillNewAccount(page, erin, 'erin.portage.test');
      await page.getByLabel('Add a recovery key that only you hold (recommended)').uncheck();
      await shot(page, '3-account-static');
      await checkAccessible(page, 'the new account (static build)');
      await page.getByRole('button', { name: 'Start transfer' }).click();
      await heading(page, 'Everything arrived');
      assert.equal(await page.locator('.recovery').count(), 0, 'no recovery key when the user declined one');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Confirmation code').fill(await newPlcToken(erin.did));
      await page.getByRole('button', { name: 'Confirm' }).click();
      await heading(page, 'Done');
      await checkMoved(erin, before, 'erin.portage.test');
      await page.context().close();
    } finally {
      await site.close();
    }
  });

  it('serves the page with its policy, hashed assets for a year, and says how to build a missing page', async () => {
    const res = await fetch(`${portage.url}/migrate/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /connect-src 'self' https: http:\/\/127\.0\.0\.1:\*/);
    const html = await res.text();
    assert.ok(html.includes(`"plcUrl":"${net.plc.url}"`), 'the page names the PLC directory');
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${portage.url}/migrate/${script}`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const gzipped = gzipSync(Buffer.from(await js.arrayBuffer())).byteLength;
    assert.ok(gzipped < 150 * 1024, `the page's JavaScript is ${gzipped} bytes gzipped, over 150 KB`);
    const redirect = await fetch(`${portage.url}/migrate`, { redirect: 'manual' });
    assert.equal(redirect.headers.get('location'), '/migrate/');
    const home = await (await fetch(`${portage.url}/`)).text();
    assert.match(home, /\/migrate\//);

    const { webRoutes } = await import('../../pds/src/web/static-site.ts');
    const page = webRoutes(join(dir, 'nowhere')).find((r) => r.path === '/migrate/')!;
    let status = 0;
    let body = '';
    await page.handler({
      ctx: portage.ctx,
      req: { method: 'GET' },
      res: {
        writeHead: (s: number) => void (status = s),
        end: (b?: Buffer) => void (body = String(b)),
      },
      params: undefined,
    } as never);
    assert.equal(status, 503);
    assert.match(body, /npm run build -w web/);
  });
});
