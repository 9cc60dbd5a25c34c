// Runs after `npm install` (the root package's postinstall). Plain JavaScript, so any Node can
// run it: it checks that the Node which npm scripts will use can run Portage, and builds
// better-sqlite3's native module for exactly that Node when the one on disk does not load in it.
//
// npm puts node_modules/.bin first on PATH for every script, and the node-<platform>-<arch>
// package (an optional dependency, so only the one for this machine is installed) links its
// Node 22 there. So `npm start`, `npm test` and `npx portage` run on that Node whatever Node
// started npm, and this script runs on it too: process.execPath is the Node to build for.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const MINIMUM = [22, 18];
const require = createRequire(import.meta.url);

function say(line) {
  process.stdout.write(`portage: ${line}\n`);
}

function fail(sentence) {
  process.stderr.write(`\nportage: ${sentence}\n\n`);
  process.exit(1);
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < MINIMUM[0] || (major === MINIMUM[0] && minor < MINIMUM[1])) {
  fail(
    `Portage needs Node.js ${MINIMUM.join('.')} or newer. This machine has Node.js ${process.versions.node}, and ` +
      `npm has no Node 22 package for ${process.platform}-${process.arch} to bring along: install Node.js 22 LTS ` +
      'and run `npm install` again.',
  );
}

/** Whether better-sqlite3 loads and opens a database in this Node (checked in a child: a failed dlopen sticks). */
function sqliteLoads() {
  const probe = "const D = require('better-sqlite3'); new D(':memory:').prepare('select 1').get();";
  return spawnSync(process.execPath, ['-e', probe], { cwd: process.cwd(), stdio: 'ignore' }).status === 0;
}

/** npm's own node-gyp: npm names it to scripts, and it ships inside npm. */
function nodeGypPath() {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath &&
      join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((path) => path && existsSync(path));
}

if (sqliteLoads()) {
  say(`ready on Node.js ${process.versions.node}`);
} else {
  const packageDir = dirname(require.resolve('better-sqlite3/package.json'));
  const nodeGyp = nodeGypPath();
  if (!nodeGyp) fail('could not find node-gyp to build better-sqlite3: run `npm install` with npm 10 or newer.');
  // The headers of the Node being built for sit beside its binary (bin/node -> include/node).
  // Naming them keeps node-gyp from using another Node's (an npmrc's `nodedir`) or downloading.
  const nodeDir = resolve(dirname(process.execPath), '..');
  const haveHeaders = existsSync(join(nodeDir, 'include', 'node', 'node_api.h'));
  say(`building better-sqlite3 for Node.js ${process.versions.node} (takes about a minute)`);
  const args = [nodeGyp, 'rebuild', '--release', ...(haveHeaders ? [`--nodedir=${nodeDir}`] : [])];
  const env = { ...process.env };
  if (haveHeaders) env.npm_config_nodedir = nodeDir;
  else delete env.npm_config_nodedir;
  // The compiler's chatter is shown only when the build fails.
  const build = spawnSync(process.execPath, args, { cwd: packageDir, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (build.status !== 0 || !sqliteLoads()) {
    process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}`.split('\n').slice(-40).join('\n'));
    fail(
      'better-sqlite3 did not build (the last lines of the build are above). It needs python3, make and a C++ ' +
        'compiler: install them (Debian and Ubuntu: `apt-get install python3 make g++`) and run `npm install` again.',
    );
  }
  say(`ready on Node.js ${process.versions.node}`);
}
