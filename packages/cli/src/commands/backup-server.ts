/**
 * `portage backup-server --out <dir>`: one backup of a server's data directory, as the running
 * server takes them on its schedule (PORTAGE_BACKUP_DIRECTORY). Meant for a stopped server; on
 * a running one each database is still copied consistently. Exit codes: 0 done, 1 failed,
 * 2 bad usage.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCommandFlags, reportUsageError } from '../command-line.ts';

export const description = "Back up a server's data directory (databases, keys, secrets, blobs) into a folder";

const USAGE = `Usage: portage backup-server --out <dir> [--data <dir>] [--keep <n>]

  --out <dir>    the backup directory: each run adds a dated folder, blobs are shared
  --data <dir>   the data directory (default PDS_DATA_DIRECTORY, else ./data)
  --keep <n>     how many backups to keep in --out (default 7)

Restore one with \`portage restore-server <dir>/<dated folder> <new data dir>\`.`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('backup-server', USAGE, args, {
    out: { type: 'string' },
    data: { type: 'string' },
    keep: { type: 'string' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags;
  if (typeof values.out !== 'string') return reportUsageError('backup-server', USAGE, '--out is required');
  const keepText = (values.keep as string | undefined) ?? '7';
  const keep = /^\d+$/.test(keepText) ? Number(keepText) : 0;
  if (keep < 1) return reportUsageError('backup-server', USAGE, '--keep must be a whole number of at least 1');
  const dataDir = resolve((values.data as string | undefined) ?? (process.env.PDS_DATA_DIRECTORY || './data'));
  if (!existsSync(join(dataDir, 'account.sqlite'))) {
    process.stderr.write(
      `portage backup-server: ${dataDir} is not a Portage data directory (it has no account.sqlite).\n`,
    );
    return 1;
  }
  // Loaded only now (see main.ts).
  const { takeBackup } = await import('@portage/pds/backup/snapshot');
  const { folder, manifest } = await takeBackup(
    {
      dataDirectory: dataDir,
      accountDbPath: join(dataDir, 'account.sqlite'),
      sequencerDbPath: join(dataDir, 'sequencer.sqlite'),
      actorStoreDirectory: join(dataDir, 'actors'),
      blobDirectory: join(dataDir, 'blocks'),
      secretsPath: join(dataDir, 'secrets.json'),
      version: process.env.PDS_VERSION || '0.1.0',
    },
    resolve(values.out),
    keep,
  );
  process.stdout.write(
    `Backed up ${manifest.accounts} accounts into ${folder} (firehose up to seq ${manifest.lastSeq}, ${manifest.blobsCopied} new blobs).\n`,
  );
  return 0;
}
