/**
 * "My old server is gone" in a real browser: an account on a reference PDS with a rotation key
 * the user holds and a `portage backup`, the reference PDS stopped for good; on Portage's
 * /migrate page the user chooses the backup as the .tar the wizard downloads and the key file,
 * fills the new account's fields, and the account comes back on Portage. Checked from outside:
 * the PLC document, signing in, records and blobs. A key that is not a rotation key of the DID
 * is refused with a sentence, and nothing changes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import type { Browser, Page } from 'playwright-core';
import { generateSigningKey } from '@portage/atproto/crypto';
import { repoRecords } from '../../migrate/test/helpers/network.ts';
import type { BackedUpAccount, RestoreNetwork } from '../../cli/test/restore-network.ts';
import { checkAccessible, launchChromium, skipWithoutChromium } from '../../../test/support/browser.ts';
import { buildPage, SHOTS } from './built-page.ts';

const skip = skipWithoutChromium('the wizard restore tests');

describe('the wizard restores an account whose old server is gone', { skip }, () => {
  let dir: string;
  let net: RestoreNetwork;
  let mia: BackedUpAccount;
  let tarFile: string;
  let auditLog: (net: RestoreNetwork, did: string) => Promise<unknown[]>;
  let browser: Browser;
  const pageProblems: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-wizard-restore-'));
    buildPage(dir);
    // Imported now: Portage's routes read the built page when the server module loads.
    const network = await import('../../cli/test/restore-network.ts');
    auditLog = network.auditLog;
    net = await network.startRestoreNetwork(dir);
    mia = await network.backedUpAccount(net, 'mia', { records: 30, blobs: 3 });
    await net.stopOld();
    // The .tar as the wizard's "Download the backup" names it: one folder, portage-backup-<did>,
    // long enough that `tar` writes long-name records for the blobs.
    const folder = `portage-backup-${mia.did.replace(/[^a-zA-Z0-9.-]/g, '_')}`;
    cpSync(mia.backupDir, join(dir, 'pack', folder), { recursive: true });
    tarFile = join(dir, `${folder}.tar`);
    const tar = spawnSync('tar', ['-cf', tarFile, '-C', join(dir, 'pack'), folder], { encoding: 'utf8' });
    assert.equal(tar.status, 0, tar.stderr);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await net?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function openRestore(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    await context.route(
      (url) => !['127.0.0.1', 'localhost'].includes(url.hostname),
      (route) => route.abort(),
    );
    const page = await context.newPage();
    page.on('pageerror', (err) => pageProblems.push(`page error: ${err.message}`));
    await page.goto(`${net.portage.url}/migrate`);
    await page.getByRole('heading', { level: 1, name: 'Who you are' }).waitFor();
    // Keyboard alone: focus the button and press Enter.
    await page.getByRole('button', { name: 'My old server is gone' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Restore from your backup' }).waitFor();
    return page;
  }

  async function fill(page: Page, keyFile: string): Promise<void> {
    await page.getByLabel('Backup file', { exact: true }).setInputFiles(tarFile);
    await page.getByText(`a backup of ${mia.did}`).waitFor();
    // The handle comes from the DID document.
    await page.waitForFunction(
      (handle) => (document.getElementById('f-handle') as HTMLInputElement | null)?.value === handle,
      mia.handle,
    );
    await page.getByLabel('Recovery key file', { exact: true }).setInputFiles(keyFile);
    await page.getByLabel('Email address', { exact: true }).fill('mia@example.org');
    await page.getByLabel('Password for the account', { exact: true }).fill(mia.password);
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  it('refuses a key file that is not a rotation key of the DID, and changes nothing', async () => {
    const length = (await auditLog(net, mia.did)).length;
    const stranger = await generateSigningKey('secp256k1');
    const keyFile = join(dir, 'stranger-key.txt');
    // The wizard's own key file format.
    writeFileSync(
      keyFile,
      `AT Protocol account recovery key (secp256k1, hex private key). Keep it secret and offline.\n` +
        `private key: ${stranger.privateKeyHex()}\npublic key: ${stranger.did()}\n`,
      { mode: 0o600 },
    );
    const page = await openRestore();
    await checkAccessible(page, 'the restore screen');
    await shot(page, 'restore-1-form');
    // The unpacked folder reads too; the .tar chosen next replaces it.
    await page.getByLabel('Or the backup folder', { exact: true }).setInputFiles(mia.backupDir);
    await page.getByText(`a backup of ${mia.did}`).waitFor();
    await fill(page, keyFile);
    await page.getByRole('button', { name: 'Restore', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: 60_000 });
    const text = await alert.innerText();
    assert.match(text, new RegExp(`\\(${stranger.did()}\\) is not one of the rotation keys of ${mia.did}`));
    assert.match(
      text,
      /Choose the key file made when the recovery key was added to this account, then press Restore\./,
    );
    assert.match(text, /Nothing was changed\./);
    await shot(page, 'restore-2-wrong-key');
    await checkAccessible(page, 'the restore screen with an error');

    assert.equal((await auditLog(net, mia.did)).length, length, 'the PLC log is unchanged');
    const res = await fetch(`${net.portage.url}/xrpc/com.atproto.sync.getRepoStatus?did=${mia.did}`);
    assert.equal(res.status, 400, 'Portage does not hold the account');
    await res.arrayBuffer();
    await page.context().close();
  });

  it('restores from the .tar and the key file into Portage', async () => {
    const page = await openRestore();
    await fill(page, mia.keyFile);
    // The repository upload waits until the progress screen is on film.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route('**/xrpc/com.atproto.repo.importRepo', async (route) => {
      await held;
      await route.continue();
    });
    await page.getByRole('button', { name: 'Restore', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Restoring your account' }).waitFor();
    await page.locator('.phase.running', { hasText: 'repository' }).first().waitFor({ timeout: 60_000 });
    await shot(page, 'restore-3-restoring');
    await checkAccessible(page, 'the restoring screen');
    release();
    await page.getByRole('heading', { level: 1, name: 'Your account is back' }).waitFor({ timeout: 120_000 });
    await shot(page, 'restore-4-done');
    await checkAccessible(page, 'the restored screen');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    assert.ok(!stored.includes(mia.password), 'no password in browser storage');
    await page.context().close();

    const portage = net.portage;
    const doc = (await (await fetch(`${net.plc.url}/${mia.did}/data`)).json()) as {
      rotationKeys: string[];
      services: { atproto_pds: { endpoint: string } };
    };
    assert.equal(doc.services.atproto_pds.endpoint, portage.publicUrl, 'the PLC document names Portage');
    assert.equal(doc.rotationKeys[0], mia.keyDid, 'the recovery key stays first');
    assert.deepEqual([...(await repoRecords(portage.url, mia.did))].sort(), [...mia.records].sort());
    for (const cid of mia.blobCids) {
      const res = await fetch(
        `${portage.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: mia.did, cid })}`,
      );
      assert.equal(res.status, 200, `blob ${cid} is on Portage`);
      await res.arrayBuffer();
    }
    const agent = new AtpAgent({ service: portage.url });
    await agent.login({ identifier: mia.did, password: mia.password });
    assert.equal((await agent.com.atproto.server.checkAccountStatus()).data.activated, true);
    assert.deepEqual((await agent.app.bsky.actor.getPreferences()).data.preferences, mia.preferences);
    assert.deepEqual(pageProblems, []);
  });
});
