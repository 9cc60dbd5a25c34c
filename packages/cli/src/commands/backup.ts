/**
 * `portage backup`: the account's repo, blobs and preferences into a folder; later runs fetch
 * only what changed. Exit codes: 0 done, 1 failed (safe to run again), 2 bad usage.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { nodeResolveTxt } from '@portage/atproto/identity/dns.node';
import { DirectoryBackup } from '@portage/migrate/backup.node';
import { fetchWithoutClientTimeouts } from '@portage/migrate/fetch.node';
import { backupAccount } from '@portage/migrate/backup-run';
import { startMemoryGuard } from '@portage/migrate/memory.node';
import { createRenderer } from '@portage/migrate/terminal.node';

export const description = 'Back up an account (repo, blobs, preferences) into a folder, incrementally';

const USAGE = `Usage: portage backup --from <handle|did> [--out <dir>] [options]

  --from <handle|did>   the account (required)
  --out <dir>           the backup folder (default ./portage-backup-<did>)
  --from-pds <url>      the account's PDS (skip looking it up in the DID document)
  --plc-url <url>       PLC directory (default https://plc.directory)
  --concurrency <n>     parallel blob downloads (default 8)
  --json                print one JSON event per line

Preferences are private: set PORTAGE_PASSWORD (or PORTAGE_OLD_PASSWORD) to include them.`;

export async function run(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        from: { type: 'string' },
        out: { type: 'string' },
        'from-pds': { type: 'string' },
        'plc-url': { type: 'string' },
        concurrency: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`portage backup: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const from = values.from as string | undefined;
  if (!from) {
    process.stderr.write(`portage backup: --from is required\n\n${USAGE}\n`);
    return 2;
  }
  const concurrency = values.concurrency === undefined ? 8 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    process.stderr.write('portage backup: --concurrency must be a whole number from 1 to 64\n');
    return 2;
  }
  const json = values.json === true;
  const render = createRenderer({
    json,
    tty: !json && process.stderr.isTTY === true,
    out: json ? process.stdout : process.stderr,
  });
  const out = values.out as string | undefined;
  startMemoryGuard();
  const result = await backupAccount(
    {
      from,
      pds: values['from-pds'] as string | undefined,
      plcUrl: values['plc-url'] as string | undefined,
      concurrency,
    },
    {
      onEvent: render,
      fetch: await fetchWithoutClientTimeouts(),
      resolveTxt: nodeResolveTxt,
      password: process.env.PORTAGE_PASSWORD || process.env.PORTAGE_OLD_PASSWORD || undefined,
      openBackup: (did) =>
        new DirectoryBackup(resolve(out ?? `portage-backup-${did.replace(/[^a-zA-Z0-9._-]/g, '_')}`), did).open(),
    },
  );
  return result.status === 'done' ? 0 : 1;
}
