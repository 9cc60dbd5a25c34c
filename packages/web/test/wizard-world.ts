/**
 * The world the wizard's Chromium tests move accounts in: the page built for the test file,
 * Portage serving it at /migrate/ beside a reference PLC and PDS (dev-env), and Chromium; with
 * the helpers that drive the page and check a move from outside (records, blobs, preferences,
 * the PLC document and both accounts' status). Shared by wizard.test.ts and oauth-signin.test.ts.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { AtpAgent } from '@atproto/api';
import type { Browser, Page } from 'playwright-core';
import type { TestPds as PortagePds } from '../../pds/test/harness.ts';
import {
  type Account,
  type Network,
  plcToken,
  repoRecords,
  type Snapshot,
  startNetwork,
} from '../../migrate/test/helpers/network.ts';
import { launchChromium } from '../../../test/support/browser.ts';
import { buildPage, SHOTS } from './built-page.ts';

export interface WizardWorld {
  dir: string;
  net: Network;
  portage: PortagePds;
  browser: Browser;
  /** DNS TXT records Portage's handle resolution answers from (handle -> did=...). */
  txt: Record<string, string[]>;
  /** Problems the pages reported: script errors and anything the Content-Security-Policy blocked. */
  pageProblems: string[];
  /**
   * A page at 390x844 that can reach only loopback: DNS-over-HTTPS finds nothing, the rest is
   * refused. `noOpfs` takes the origin private file system away, as in browsers without it.
   */
  openWizard(opts?: { noOpfs?: boolean; noIndexedDb?: boolean }): Promise<Page>;
  shot(page: Page, name: string): Promise<void>;
  heading(page: Page, text: string): Promise<void>;
  fillNewAccount(page: Page, account: Account, newHandle: string): Promise<void>;
  checkMoved(account: Account, before: Snapshot, newHandle: string): Promise<void>;
  plcDocumentPds(did: string): Promise<string>;
  /** Waits for the emailed PLC token to differ from `previous` (a new one was requested). */
  newPlcToken(did: string, previous?: string): Promise<string>;
  /** Waits for the PLC token Portage emailed to an account it holds. */
  portagePlcToken(did: string): Promise<string>;
  /**
   * The static build as any web host would serve it, on its own loopback port, with a
   * config.json naming the test's PLC directory; `close` stops that host.
   */
  serveStaticBuild(): Promise<{ url: string; close(): Promise<void> }>;
  close(): Promise<void>;
}

export async function startWizardWorld(): Promise<WizardWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'portage-wizard-'));
  buildPage(dir);
  const net = await startNetwork(1);
  const txt: Record<string, string[]> = {};
  // Imported now: the routes read the built page when the server module loads.
  const { startTestPds, outboxToken } = await import('../../pds/test/harness.ts');
  const portage = await startTestPds({
    plcUrl: net.plc.url,
    txtRecords: txt,
    // Handles here end in .portage.test, so the movers' .test handles resolve through DNS (the TXT records).
    env: { PDS_SERVICE_DID: 'did:web:portage.test', PDS_SERVICE_HANDLE_DOMAINS: '.portage.test' },
  });
  // A test file that imported Portage's server modules before the build would serve a stale page.
  const served = await (await fetch(`${portage.url}/migrate/`)).text();
  const script = (html: string) => /assets\/[^"]+\.js/.exec(html)?.[0];
  assert.equal(
    script(served),
    script(readFileSync(join(dir, 'dist', 'index.html'), 'utf8')),
    'Portage serves the page built for this test (import its server modules only after buildPage)',
  );
  const browser = await launchChromium();
  const pageProblems: string[] = [];

  async function openWizard(opts: { noOpfs?: boolean; noIndexedDb?: boolean } = {}): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    if (opts.noOpfs) {
      await context.addInitScript(() => {
        delete (StorageManager.prototype as { getDirectory?: unknown }).getDirectory;
      });
    }
    if (opts.noIndexedDb) {
      await context.addInitScript(() => {
        Object.defineProperty(window, 'indexedDB', { value: undefined });
      });
    }
    await context.route(
      (url) => !['127.0.0.1', 'localhost'].includes(url.hostname),
      (route) =>
        route.request().url().startsWith('https://cloudflare-dns.com/')
          ? route.fulfill({ status: 200, contentType: 'application/dns-json', body: '{"Status":3}' })
          : route.abort(),
    );
    const page = await context.newPage();
    page.on('pageerror', (err) => pageProblems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) pageProblems.push(msg.text());
    });
    await page.goto(`${portage.url}/migrate`);
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  async function heading(page: Page, text: string): Promise<void> {
    await page.getByRole('heading', { level: 1, name: text }).waitFor({ timeout: 60_000 });
  }

  async function fillNewAccount(page: Page, account: Account, newHandle: string): Promise<void> {
    await heading(page, 'Your new account');
    await page.getByLabel('New handle').fill(newHandle);
    await page.getByLabel('Email').fill(`${newHandle}@example.com`);
    await page.getByLabel('New password').fill(`${account.password}-new`);
  }

  async function checkMoved(account: Account, before: Snapshot, newHandle: string): Promise<void> {
    const records = await repoRecords(portage.url, account.did);
    assert.deepEqual([...records].sort(), [...before.records].sort(), 'the new repo holds the same records');
    for (const cid of account.blobCids) {
      const res = await fetch(
        `${portage.url}/xrpc/com.atproto.sync.getBlob?${new URLSearchParams({ did: account.did, cid })}`,
      );
      assert.equal(res.status, 200, `blob ${cid} is on Portage`);
      await res.arrayBuffer();
    }
    const doc = (await (await fetch(`${net.plc.url}/${account.did}`)).json()) as {
      alsoKnownAs: string[];
      service: { serviceEndpoint: string }[];
    };
    assert.equal(doc.service[0]!.serviceEndpoint, portage.publicUrl, 'the PLC document names Portage');
    assert.deepEqual(doc.alsoKnownAs, [`at://${newHandle}`]);
    const agent = new AtpAgent({ service: portage.url });
    await agent.login({ identifier: account.did, password: `${account.password}-new` });
    const status = await agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.activated, true, 'the new account is active');
    assert.equal(status.data.importedBlobs, account.blobCids.length, 'each blob arrived once');
    assert.equal(status.data.expectedBlobs, account.blobCids.length);
    const prefs = await agent.app.bsky.actor.getPreferences();
    assert.deepEqual(prefs.data.preferences, before.preferences, 'equal preferences');
    const old = new AtpAgent({ service: net.pdses[0]!.url });
    await old.login({ identifier: account.did, password: account.password });
    assert.equal(old.session?.active, false, 'the old account is deactivated');
  }

  async function plcDocumentPds(did: string): Promise<string> {
    const doc = (await (await fetch(`${net.plc.url}/${did}`)).json()) as { service: { serviceEndpoint: string }[] };
    return doc.service[0]!.serviceEndpoint;
  }

  async function newPlcToken(did: string, previous?: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const token = await plcToken(net.pdses[0]!, did);
      if (token && token !== previous) return token;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('no PLC token was emailed');
  }

  let staticSites = 0;
  async function serveStaticBuild(): Promise<{ url: string; close(): Promise<void> }> {
    const site = join(dir, `static-${staticSites++}`);
    cpSync(join(dir, 'dist'), site, { recursive: true });
    writeFileSync(join(site, 'config.json'), JSON.stringify({ plcUrl: net.plc.url }));
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
    const host = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://host').pathname;
      const file = join(site, path.endsWith('/') ? `${path}index.html` : path);
      if (!file.startsWith(site) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/json' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(host.address() as AddressInfo).port}/`,
      close: () => new Promise<void>((resolve) => host.close(() => resolve())),
    };
  }

  async function portagePlcToken(did: string): Promise<string> {
    const email = portage.ctx.accountManager.getAccount(did)?.email;
    for (let i = 0; i < 200; i++) {
      const token = outboxToken(portage.ctx.mailer.outboxPath, email);
      if (token) return token;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('Portage emailed no PLC token');
  }

  async function close(): Promise<void> {
    await browser.close();
    await portage.close();
    await net.close();
    rmSync(dir, { recursive: true, force: true });
  }

  return {
    dir,
    net,
    portage,
    browser,
    txt,
    pageProblems,
    openWizard,
    shot,
    heading,
    fillNewAccount,
    checkMoved,
    plcDocumentPds,
    newPlcToken,
    portagePlcToken,
    serveStaticBuild,
    close,
  };
}
