/**
 * "Check an account" in Chromium: the doctor in the page. Another tool's move from a reference
 * PDS into Portage stopped halfway (the identity moved, the blobs never copied, both accounts
 * left deactivated); the page says so, repairs it when asked, and the account then works where
 * its identity points, checked from outside.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { createAccount, plcToken, repoRecords } from '../../migrate/test/helpers/network.ts';
import { rawMove } from '../../migrate/test/helpers/raw-move.ts';
import { checkAccessible, skipWithoutChromium } from '../../../test/support/browser.ts';
import { startWizardWorld, type WizardWorld } from './wizard-world.ts';

const skip = skipWithoutChromium('the account check tests');

describe('checking and repairing a half-finished move, in Chromium', { skip }, () => {
  let world: WizardWorld;

  before(async () => {
    world = await startWizardWorld();
  });

  after(async () => {
    await world?.close();
  });

  it("another tool's move left without its blobs and both accounts deactivated: found, then repaired", async () => {
    const from = world.net.pdses[0]!;
    const { portage } = world;
    const kim = await createAccount(from, 'kim', { records: 12, blobs: 3, blobSize: 20_000 });
    const records = await repoRecords(from.url, kim.did);
    // The other tool keeps the handle, which Portage checks through DNS.
    world.txt[`_atproto.${kim.handle}`] = [`did=${kim.did}`];
    await rawMove(
      kim,
      'kim@example.com',
      { importRepo: true, blobs: false, plc: true, activateNew: false, deactivateOld: true },
      { oldUrl: from.url, newUrl: portage.url, newDid: 'did:web:portage.test', plcToken: (did) => plcToken(from, did) },
    );
    assert.equal(await world.plcDocumentPds(kim.did), portage.publicUrl, 'the identity moved');

    const page = await world.openWizard();
    await world.heading(page, 'Who you are');
    await page.getByRole('button', { name: 'Check an account' }).click();
    await world.heading(page, 'Check an account');
    await world.shot(page, 'check-1-form');
    await checkAccessible(page, 'check an account');
    await page.getByLabel('Handle or DID').fill(kim.did);
    await page.getByLabel('Password', { exact: true }).fill(kim.password);
    await page.getByLabel('Password', { exact: true }).press('Enter');

    await world.heading(page, 'What the check found');
    const report = await page.locator('main').innerText();
    assert.match(report, /Problem:/);
    assert.match(
      report,
      /^kim\.test \(did:plc:[a-z2-7]+\) is locked out/m,
      'the verdict names the account as it is spelled',
    );
    assert.match(report, /3 of 3 blobs \(images, videos\) are missing/);
    assert.match(report, /Both accounts are deactivated/);
    await world.shot(page, 'check-2-found');
    await checkAccessible(page, 'what the check found');
    await page.setViewportSize({ width: 360, height: 740 });
    assert.equal(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      true,
      'no sideways scrolling at 360 px',
    );
    await page.setViewportSize({ width: 390, height: 844 });
    const status = await new AtpAgent({ service: portage.url }).com.atproto.sync.getRepoStatus({ did: kim.did });
    assert.equal(status.data.active, false, 'the check alone changed nothing');

    await page.getByRole('button', { name: 'Repair' }).click();
    await page.getByText('What the repair did').waitFor({ timeout: 60_000 });
    await page
      .locator('p.success')
      .getByText(/is in order on/)
      .waitFor({ timeout: 60_000 });
    await world.shot(page, 'check-3-repaired');
    assert.equal(await page.getByRole('button', { name: 'Repair' }).count(), 0, 'nothing left to repair');

    // From outside: the account works where its identity points, and the old copy stays off.
    const agent = new AtpAgent({ service: portage.url });
    await agent.login({ identifier: kim.did, password: kim.password });
    assert.equal((await agent.com.atproto.server.checkAccountStatus()).data.activated, true);
    const now = await repoRecords(portage.url, kim.did);
    assert.deepEqual([...now].sort(), [...records].sort(), 'every record');
    for (const cid of kim.blobCids) {
      const res = await fetch(
        `${portage.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: kim.did, cid })}`,
      );
      assert.equal(res.status, 200, `blob ${cid} is on Portage`);
      await res.arrayBuffer();
    }
    const old = await fetch(`${from.url}/xrpc/com.atproto.sync.getRepoStatus?${new URLSearchParams({ did: kim.did })}`);
    assert.equal(((await old.json()) as { active: boolean }).active, false, 'the old account stays deactivated');
    await page.context().close();
    assert.deepEqual(world.pageProblems, [], 'no script error and nothing blocked by the policy');
  });

  it('an account that does not exist gets a sentence, and nothing happens', async () => {
    const page = await world.openWizard();
    await page.getByRole('button', { name: 'Check an account' }).click();
    await world.heading(page, 'Check an account');
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await page.getByRole('alert').getByText('Enter the handle or DID of the account, then press Check.').waitFor();
    await page.getByLabel('Handle or DID').fill('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa');
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    await page.waitForFunction(() => !document.querySelector('.working'));
    assert.match(
      await alert.innerText(),
      /does not exist.*Check the account \(handle or DID\)\. Nothing was changed\.$/s,
    );
    assert.doesNotMatch(await alert.innerText(), /--|PORTAGE_/);
    await world.heading(page, 'Check an account');
    await world.shot(page, 'check-4-unknown');
    await page.getByRole('button', { name: 'Back to moving an account' }).click();
    await world.heading(page, 'Who you are');
    await page.context().close();
  });

  it('a move that left the old account active, with another password there: asks for it, then deactivates that copy', async () => {
    const from = world.net.pdses[0]!;
    const { portage } = world;
    const lou = await createAccount(from, 'lou', { records: 5, blobs: 1, blobSize: 20_000 });
    world.txt[`_atproto.${lou.handle}`] = [`did=${lou.did}`];
    const newPassword = `${lou.password}-on-portage`;
    await rawMove(
      lou,
      'lou@example.com',
      { importRepo: true, blobs: true, plc: true, activateNew: true, deactivateOld: false },
      { oldUrl: from.url, newUrl: portage.url, newDid: 'did:web:portage.test', plcToken: (did) => plcToken(from, did) },
      newPassword,
    );
    const oldActive = async () => {
      const res = await fetch(
        `${from.url}/xrpc/com.atproto.sync.getRepoStatus?${new URLSearchParams({ did: lou.did })}`,
      );
      return ((await res.json()) as { active: boolean }).active;
    };
    assert.equal(await oldActive(), true);

    const page = await world.openWizard();
    await page.getByRole('button', { name: 'Check an account' }).click();
    await page.getByLabel('Handle or DID').fill(lou.did);
    await page.getByLabel('Password', { exact: true }).fill(newPassword);
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await world.heading(page, 'What the check found');
    const first = await page.locator('main').innerText();
    assert.match(first, /still active/i, 'the live old copy is named');
    assert.match(first, /Press Check again, enter the password of the other server under Password on the other server/);
    await world.shot(page, 'check-5-other-password-needed');
    assert.equal(await page.getByRole('button', { name: 'Repair' }).count(), 0, 'no repair without the other password');

    await page.getByRole('button', { name: 'Check again' }).click();
    await world.heading(page, 'Check an account');
    await page.getByLabel('Password on the other server').fill(lou.password);
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await world.heading(page, 'What the check found');
    await page.getByRole('button', { name: 'Repair' }).click();
    await page
      .locator('p.success')
      .getByText(/is in order on/)
      .waitFor({ timeout: 60_000 });
    assert.equal(await oldActive(), false, 'the old copy is deactivated');
    const agent = new AtpAgent({ service: portage.url });
    await agent.login({ identifier: lou.did, password: newPassword });
    assert.equal((await agent.com.atproto.server.checkAccountStatus()).data.activated, true, 'still active on Portage');
    await page.context().close();
  });
});
