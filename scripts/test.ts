// Runs every test file of the workspace with Node's built-in test runner.
// Usage: npm test [-- <substring filter on file paths>]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');

function collect(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
}

const files: string[] = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const testDir = join(root, 'packages', pkg, 'test');
  try {
    if (statSync(testDir).isDirectory()) collect(testDir, files);
  } catch {}
}
const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files;
selected.sort();

// A test that never ends must fail the run, not stall it (and CI with it). Each test file gets
// five minutes (its whole process, which the runner kills then: the slowest takes about one), and
// the whole run, with every process it started (its own process group), is stopped at a deadline
// (PORTAGE_TEST_DEADLINE_MINUTES, default 20). The spec reporter prints files in order, so the
// file after the last one printed is the one still running. Not --test-force-exit: it ended
// files early, between subtests, and left the skipped tests out of the count without a failure.
const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...selected];
const deadlineMinutes = Number(process.env.PORTAGE_TEST_DEADLINE_MINUTES ?? 20);
const runner = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', detached: true });
const stopGroup = (signal: NodeJS.Signals) => {
  try {
    process.kill(-runner.pid!, signal);
  } catch {
    // Already gone.
  }
};
const deadline = setTimeout(() => {
  process.stderr.write(
    `\nThe tests ran past their deadline of ${deadlineMinutes} minutes: stopping them. A test or a process ` +
      'it started is hung: the first suspect is the file after the last one reported above.\n',
  );
  stopGroup('SIGKILL');
}, deadlineMinutes * 60_000);
// The runner leads its own process group, so Ctrl-C reaches it only through here.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stopGroup(signal));
runner.on('close', (code) => {
  clearTimeout(deadline);
  process.exit(code ?? 1);
});
