/**
 * Server backups shipped to the blob bucket (PORTAGE_BACKUP_TO_BUCKET): once a backup folder is
 * complete on disk, each of its files is streamed to `backups/<folder name>/<path>`, the
 * manifest last, so a backup in the bucket with its manifest is whole. Blobs are not copied:
 * with the S3 store they are in the bucket already. The folder holds `secrets.json`, so the
 * bucket must be as private as the server.
 */
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { S3BlobStore } from '../blobstore/s3.ts';
import type { BackupShipping } from './server-backups.ts';

const MANIFEST = 'manifest.json';

export function bucketShipping(bucket: S3BlobStore): BackupShipping {
  return {
    name: `bucket ${bucket.bucket}`,
    async ship(folder: string): Promise<number> {
      const prefix = `backups/${basename(folder)}`;
      const entries = await readdir(folder, { recursive: true, withFileTypes: true });
      const files = entries
        .filter((e) => e.isFile())
        .map((e) => relative(folder, join(e.parentPath, e.name)))
        .sort((a, b) => Number(a === MANIFEST) - Number(b === MANIFEST));
      for (const file of files) await bucket.putObject(`${prefix}/${file}`, createReadStream(join(folder, file)));
      return files.length;
    },
  };
}
