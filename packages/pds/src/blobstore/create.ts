/**
 * Which blob store a configuration names: the bucket when PDS_BLOBSTORE_S3_BUCKET is set, else
 * the disk; while blobs move between them (PORTAGE_BLOBSTORE_PREVIOUS) the server reads both.
 */
import type { PdsConfig } from '../config.ts';
import type { BlobStore } from './blobstore.ts';
import { DiskBlobStore } from './disk.ts';
import { MovingBlobStore } from './moving.ts';
import { S3BlobStore } from './s3.ts';

export function diskBlobStore(config: PdsConfig): DiskBlobStore {
  return new DiskBlobStore(config.blobstoreDiskLocation, config.blobstoreDiskTmpLocation);
}

/** The bucket's store, or undefined when no bucket is configured. */
export function s3BlobStore(config: PdsConfig): S3BlobStore | undefined {
  const s3 = config.blobstoreS3;
  return s3 && new S3BlobStore(s3);
}

export function createBlobStore(config: PdsConfig): BlobStore {
  const disk = diskBlobStore(config);
  const s3 = s3BlobStore(config);
  if (!s3) return disk;
  if (config.blobstorePrevious === 'disk') return new MovingBlobStore(s3, disk);
  if (config.blobstorePrevious === 's3') return new MovingBlobStore(disk, s3);
  return s3;
}
