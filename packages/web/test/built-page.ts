/** The wizard's page for the Chromium tests: built fresh, and where the PDS serves it from. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const WEB = join(import.meta.dirname, '..');
const ROOT = join(WEB, '..', '..');
/** Screenshots of each step, for people to look at (gitignored). */
export const SHOTS = process.env.PORTAGE_WIZARD_SHOTS ?? join(WEB, 'test-output');

/**
 * Builds the page into `<dir>/dist` and points PORTAGE_WEB_DIST at it; import Portage's server
 * modules only after, as its routes read the built page when they load.
 */
export function buildPage(dir: string): void {
  const dist = join(dir, 'dist');
  const build = spawnSync(
    join(ROOT, 'node_modules', '.bin', 'vite'),
    ['build', '--outDir', dist, '--logLevel', 'error'],
    {
      cwd: WEB,
      encoding: 'utf8',
    },
  );
  assert.equal(build.status, 0, `vite build failed: ${build.stderr}`);
  process.env.PORTAGE_WEB_DIST = dist;
  mkdirSync(SHOTS, { recursive: true });
}
