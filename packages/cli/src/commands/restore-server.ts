/**
 * `portage restore-server <backup folder> <data dir>`: brings a server back from one of the
 * backups PORTAGE_BACKUP_DIRECTORY (or `portage backup-server`) holds, into an empty or new data
 * directory. Exit codes: 0 restored, 1 refused or failed (nothing left behind), 2 bad usage.
 */
import { resolve } from 'node:path';
import { reportUsageError } from '../command-line.ts';

export const description = 'Restore a server backup into an empty data directory';

const USAGE = `Usage: portage restore-server <backup folder> <data dir>

  <backup folder>   one of the dated folders in the backup directory
                    (e.g. /var/backups/portage/2026-12-07T01-00-00-000Z)
  <data dir>        where the server will keep its data: empty or not yet existing

Checks every file against the backup's manifest and each database with SQLite's integrity
check, then copies the databases, the signing keys, the secrets and the accounts' blobs.`;

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const flag = args.find((a) => a.startsWith('-'));
  if (flag) return reportUsageError('restore-server', USAGE, `unknown option "${flag}"`);
  const positionals = args;
  if (positionals.length !== 2) {
    return reportUsageError('restore-server', USAGE, 'expected a backup folder and a data directory');
  }
  const [backup, dataDir] = positionals.map((p) => resolve(p)) as [string, string];
  // Loaded only now (see main.ts).
  const { restoreBackup, RestoreError } = await import('@portage/pds/backup/restore');
  let result: Awaited<ReturnType<typeof restoreBackup>>;
  try {
    result = await restoreBackup(backup, dataDir);
  } catch (err) {
    if (err instanceof RestoreError) {
      process.stderr.write(`portage restore-server: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const { manifest } = result;
  const lines = [
    `Restored the backup of ${manifest.createdAt} (Portage ${manifest.portageVersion}) into ${dataDir}:`,
    `  ${manifest.accounts} accounts, ${result.databases} databases checked, ${result.blobsRestored} blobs, firehose up to seq ${manifest.lastSeq}`,
  ];
  if (result.blobsMissing.length > 0) {
    lines.push(
      `  ${result.blobsMissing.length} blobs the accounts reference are not in the backup (deleted while it was taken?):`,
      ...result.blobsMissing.slice(0, 10).map((b) => `    ${b}`),
    );
  }
  lines.push('', 'Next:');
  if (!result.secretsRestored) {
    lines.push(
      '  - The backup holds no secrets.json: set PDS_JWT_SECRET, PDS_ADMIN_PASSWORD and',
      "    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX to the old server's values, or its accounts",
      '    cannot be served.',
    );
  }
  lines.push(
    `  - Start the server on it: PDS_DATA_DIRECTORY=${dataDir} portage serve (or your service`,
    '    manager with the same environment as before; the restored files use the default layout,',
    '    so unset PDS_ACCOUNT_DB_LOCATION, PDS_ACTOR_STORE_DIRECTORY and PDS_BLOBSTORE_DISK_LOCATION).',
    '  - Writes made after the backup are not in it. Ask relays to crawl again',
    '    (com.atproto.sync.requestCrawl) once it is up.',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
