/**
 * Page tests in a real browser: Debian's Chromium driven by playwright-core (its own browser
 * download cannot work here), and the checks every page gets: axe-core finds no serious or
 * critical violation, and nothing is wider than a phone's screen at 390 and 360 px.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** For `describe(..., { skip })`: false when Chromium is there, else why the tests do not run. */
export function skipWithoutChromium(what: string): false | string {
  return existsSync(CHROMIUM)
    ? false
    : `no browser at ${CHROMIUM}: install Debian's Chromium (apt-get install -y chromium) to run ${what}`;
}

/** Headless Chromium with no traffic of its own (this machine reaches no network but loopback). */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

interface AxeViolation {
  id: string;
  impact?: string | null;
  help: string;
  nodes: { target: string[] }[];
}

let axeSource: string | undefined;

/**
 * axe-core on the page as it is (no serious or critical violation), and no sideways scrolling at
 * 390 and 360 px; leaves the page at 390 x 844.
 */
export async function checkAccessible(page: Page, name: string): Promise<void> {
  axeSource ??= readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the debugging protocol, which the page's Content-Security-Policy does not restrict.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(): Promise<{ violations: AxeViolation[] }> } }).axe;
    return (await axe.run()).violations;
  });
  const bad = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  assert.deepEqual(bad, [], `accessibility of ${name}`);
  for (const width of [390, 360]) {
    await page.setViewportSize({ width, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} is ${overflow} px wider than a ${width} px screen`);
  }
  await page.setViewportSize({ width: 390, height: 844 });
}
