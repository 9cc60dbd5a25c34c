// `npm run bench -- <name> [args]`: runs bench/<name>.ts in its own process (so peak RSS
// figures belong to that benchmark alone). Without a name, lists the benchmarks.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = import.meta.dirname;
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${names.join('|')}> [args]\n`);
  process.exit(name ? 2 : 0);
}
const result = spawnSync(process.execPath, ['--expose-gc', join(dir, `${name}.ts`), ...args], { stdio: 'inherit' });
process.exit(result.status ?? 1);
