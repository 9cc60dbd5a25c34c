/**
 * Where blob bytes live. The actor store keeps blob metadata (CID, MIME type, size, temporary or
 * permanent, which records reference it); a BlobStore only moves bytes. Uploads land in a
 * temporary area first because a blob belongs to the repository only once a committed record
 * references it; until then it can be swept away without touching any account's data.
 */
import type { Cid } from '@portage/atproto/cid';
import { AtprotoError } from '@portage/atproto/errors';

export interface StoredTempBlob {
  /** Opaque name of the temporary file, kept in the actor store until the blob is committed or swept. */
  tempKey: string;
  cid: Cid;
  size: number;
  /** MIME type found from the first bytes, or undefined when the content was not recognised. */
  sniffedMimeType: string | undefined;
}

export interface BlobReadResult {
  size: number;
  stream: AsyncIterable<Uint8Array>;
}

export interface BlobStore {
  /**
   * Streams `body` into a temporary blob for `did`, hashing as it goes. Rejects with
   * BlobTooLargeError as soon as more than `maxSize` bytes arrive, leaving nothing behind.
   */
  putTemp(did: string, body: AsyncIterable<Uint8Array>, maxSize: number): Promise<StoredTempBlob>;
  /** Moves a temporary blob to its permanent place. Idempotent: a blob already permanent is fine. */
  makePermanent(did: string, tempKey: string, cid: Cid): Promise<void>;
  /** Removes a temporary upload (duplicate of a stored blob, or swept because never referenced). */
  deleteTemp(did: string, tempKey: string): Promise<void>;
  /** True when the permanent copy exists. */
  hasPermanent(did: string, cid: Cid): Promise<boolean>;
  /** Opens a permanent blob for streaming, or undefined when it is not stored. */
  read(did: string, cid: Cid): Promise<BlobReadResult | undefined>;
  /** Deletes permanent blobs; missing ones are ignored. */
  delete(did: string, cids: Cid[]): Promise<void>;
  /** Deletes every blob of an account (account deletion). */
  deleteAll(did: string): Promise<void>;
  /** Deletes temporary files older than `maxAgeMs` whatever the actor store thinks; returns how many. */
  sweepTemp(maxAgeMs: number): Promise<number>;
  /** Rejects, saying why, when blobs cannot be stored right now (the health check). */
  checkWritable(): Promise<void>;
  /** Bytes of permanent blobs (the blob-bytes metric). */
  storedBytes(): Promise<number>;
  /** Every permanent blob, account by account (moving blobs between stores). */
  listPermanent(): AsyncIterable<{ did: string; cid: string; size: number }>;
  /** Releases connections (the bucket's client); the disk store has none. */
  close?(): Promise<void>;
}

/** The upload went over PDS_BLOB_UPLOAD_LIMIT; nothing was stored. */
export class BlobTooLargeError extends AtprotoError {
  readonly limit: number;
  constructor(limit: number) {
    super('BlobTooLarge', `blob is larger than the upload limit of ${limit} bytes`);
    this.limit = limit;
  }
}
