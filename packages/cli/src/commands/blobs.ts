/**
 * `portage blobs move --to s3|disk`: moves a server's blobs between its disk folder and its S3
 * bucket while the server runs. The server is started first with PORTAGE_BLOBSTORE_PREVIOUS
 * naming the store blobs leave (so it writes to the new one and reads from both); this command
 * then copies each blob, checks it against its CID, and removes the old copy. Stopped part-way,
 * it resumes where it was when run again. Exit codes: 0 every blob moved, 1 some could not be,
 * 2 bad usage or configuration.
 */
import { parseCommandFlags, reportUsageError } from '../command-line.ts';

export const description = "Move a server's blobs between its disk folder and its S3 bucket (while it runs)";

const USAGE = `Usage: portage blobs move --to <s3|disk> [--data <dir>]

  --to <s3|disk>   where the blobs go
  --data <dir>     the data directory (default PDS_DATA_DIRECTORY, else ./data)

The bucket and the disk folder are read from the server's configuration (the environment and
<data>/pds.env): PDS_BLOBSTORE_S3_BUCKET and the other PDS_BLOBSTORE_S3_* settings,
PDS_BLOBSTORE_DISK_LOCATION.

Moving to S3 without stopping the server:
  1. set the PDS_BLOBSTORE_S3_* settings and PORTAGE_BLOBSTORE_PREVIOUS=disk, restart the server
     (new blobs go to the bucket; blobs still on disk are served from there)
  2. portage blobs move --to s3          (run it again if it stops: it resumes)
  3. remove PORTAGE_BLOBSTORE_PREVIOUS and restart the server
Moving back to disk is the same with PORTAGE_BLOBSTORE_PREVIOUS=s3 and --to disk.`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'move') return reportUsageError('blobs', USAGE, `unknown subcommand "${sub}"; the one there is: move`);
  const parsed = parseCommandFlags('blobs move', USAGE, rest, {
    to: { type: 'string' },
    data: { type: 'string' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const to = parsed.flags.to;
  if (to !== 's3' && to !== 'disk') return reportUsageError('blobs move', USAGE, '--to must be s3 or disk');

  // Loaded only now (see main.ts).
  const { ConfigError, loadConfig } = await import('@portage/pds');
  const { diskBlobStore, s3BlobStore } = await import('@portage/pds/blobstore/create');
  const { moveBlobs } = await import('@portage/pds/blobstore/move');
  const env = { ...process.env };
  if (typeof parsed.flags.data === 'string') env.PDS_DATA_DIRECTORY = parsed.flags.data;
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`portage blobs move: bad configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const s3 = s3BlobStore(config);
  if (!s3) {
    process.stderr.write(
      'portage blobs move: no bucket is configured. Set PDS_BLOBSTORE_S3_BUCKET (and the other PDS_BLOBSTORE_S3_* settings) as the server has them.\n',
    );
    return 2;
  }
  const disk = diskBlobStore(config);
  const [from, target] = to === 's3' ? [disk, s3] : [s3, disk];
  const fromName = to === 's3' ? `disk (${config.blobstoreDiskLocation})` : `bucket ${s3.bucket}`;
  const toName = to === 's3' ? `bucket ${s3.bucket}` : `disk (${config.blobstoreDiskLocation})`;
  try {
    await target.checkWritable();
  } catch (err) {
    process.stderr.write(`portage blobs move: cannot write to the ${toName}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`Moving blobs from the ${fromName} to the ${toName}...\n`);
  let shown = 0;
  const result = await moveBlobs(from, target, {
    onBlob(progress) {
      const done = progress.moved + progress.alreadyThere + progress.failed.length;
      if (done - shown >= 100) {
        shown = done;
        process.stdout.write(`  ${done} blobs handled (${(progress.movedBytes / 1e6).toFixed(1)} MB copied)\n`);
      }
    },
  });
  await s3.close();
  process.stdout.write(
    `Moved ${result.moved} blobs (${(result.movedBytes / 1e6).toFixed(1)} MB); ${result.alreadyThere} were already there.\n`,
  );
  if (result.failed.length > 0) {
    for (const f of result.failed) process.stderr.write(`  not moved: ${f.did} ${f.cid}: ${f.reason}\n`);
    process.stderr.write(
      `portage blobs move: ${result.failed.length} blobs could not be moved; they stay in the ${fromName}, still served. Run the command again to retry them.\n`,
    );
    return 1;
  }
  process.stdout.write(
    `Every blob is in the ${toName}. Remove PORTAGE_BLOBSTORE_PREVIOUS from the server's settings and restart it.\n`,
  );
  return 0;
}
