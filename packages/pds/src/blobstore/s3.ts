/**
 * Blobs in an S3-compatible bucket, under the reference PDS's keys: `blocks/<did>/<cid>` for
 * permanent blobs and `tmp/<did>/<key>` for uploads no committed record references yet, so a
 * bucket the reference filled serves here unchanged. Uploads stream through the hash: a blob
 * that fits in one part goes up in one request, a larger one into a multipart upload
 * (`@aws-sdk/lib-storage`) with a few parts in flight, so memory stays flat whatever the blob's
 * size; downloads stream the object's body. Making a blob permanent is
 * a server-side copy then a delete of the temporary object.
 *
 * The SDK is imported on first use: a server storing blobs on disk never loads it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { type Cid, CODEC_RAW, cidFromDigest, formatCid } from '@portage/atproto/cid';
import { AtprotoError } from '@portage/atproto/errors';
import { XrpcError } from '../xrpc/errors.ts';
import { type BlobReadResult, type BlobStore, BlobTooLargeError, type StoredTempBlob } from './blobstore.ts';
import { SNIFF_LENGTH, sniffMimeType } from './mime-sniff.ts';

export interface S3BlobStoreOptions {
  bucket: string;
  region?: string;
  /** An S3-compatible service's URL (MinIO, R2, ...); unset: AWS. */
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /**
   * PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS: an upload fails when neither the client nor the bucket
   * moved it forward for this long (a stall, not a bound on a large upload's whole time).
   */
  uploadTimeoutMs?: number;
  /** How long one request may stay silent (PDS_BLOBSTORE_S3_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/**
 * The bucket could not be reached or refused a request; nothing the client sent was wrong. The
 * client is told what happened and what to do; the bucket's own error (which names its address)
 * stays in the cause, for the log.
 */
export class BlobStoreUnavailableError extends XrpcError {
  constructor(action: string, cause: unknown) {
    super(503, 'BlobStoreUnavailable', `The blob store could not ${action} right now; try again later.`);
    this.cause = cause;
  }
}

/** Multipart part size: S3's minimum, so the parts in flight stay small. */
const PART_SIZE = 5 * 1024 * 1024;
/** Parts uploaded at once (their buffers are the upload's memory). */
const PARTS_IN_FLIGHT = 4;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;
const DEFAULT_UPLOAD_TIMEOUT_MS = 20_000;
const SECOND = 1000;

type S3Module = typeof import('@aws-sdk/client-s3');
type StorageModule = typeof import('@aws-sdk/lib-storage');

export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly #options: S3BlobStoreOptions;
  readonly #uploadTimeoutMs: number;
  #loaded: Promise<{ s3: S3Module; storage: StorageModule; client: S3Client }> | undefined;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.#options = options;
    this.#uploadTimeoutMs = options.uploadTimeoutMs ?? DEFAULT_UPLOAD_TIMEOUT_MS;
  }

  #sdk(): Promise<{ s3: S3Module; storage: StorageModule; client: S3Client }> {
    this.#loaded ??= (async () => {
      const [s3, storage] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]);
      const o = this.#options;
      const client = new s3.S3Client({
        region: o.region ?? 'us-east-1',
        endpoint: o.endpoint,
        forcePathStyle: o.forcePathStyle,
        credentials:
          o.accessKeyId && o.secretAccessKey
            ? { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey }
            : undefined,
        // Blobs are checked against their CIDs already; the SDK's default trailing checksums
        // are refused by several S3-compatible services.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // As the reference: short enough to notice a stalled connection, long enough for a
        // client reading a download slowly.
        requestHandler: {
          requestTimeout: o.requestTimeoutMs ?? Math.max(Math.min(this.#uploadTimeoutMs, 15 * SECOND), 6 * SECOND),
          connectionTimeout: 5 * SECOND,
        },
        maxAttempts: 3,
      });
      return { s3, storage, client };
    })();
    return this.#loaded;
  }

  static tempKey(did: string, key: string): string {
    return `tmp/${did}/${key}`;
  }

  static permanentKey(did: string, cid: Cid | string): string {
    return `blocks/${did}/${typeof cid === 'string' ? cid : formatCid(cid)}`;
  }

  async checkWritable(): Promise<void> {
    const { s3, client } = await this.#sdk();
    const key = `tmp/.health-${randomBytes(6).toString('hex')}`;
    try {
      await client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: '' }));
      await client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw new BlobStoreUnavailableError(`write to bucket ${this.bucket}`, err);
    }
  }

  async putTemp(did: string, body: AsyncIterable<Uint8Array>, maxSize: number): Promise<StoredTempBlob> {
    const tempKey = randomBytes(16).toString('hex');
    const key = S3BlobStore.tempKey(did, tempKey);
    const hash = createHash('sha256');
    let size = 0;
    let head = new Uint8Array(0);
    async function* measured(): AsyncGenerator<Uint8Array> {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > maxSize) throw new BlobTooLargeError(maxSize);
        if (head.length < SNIFF_LENGTH) head = Buffer.concat([head, chunk.subarray(0, SNIFF_LENGTH - head.length)]);
        hash.update(chunk);
        yield chunk;
      }
    }
    try {
      // A blob that fits in one part goes up in one request, its length known.
      const chunks = measured();
      const first: Uint8Array[] = [];
      let firstBytes = 0;
      let next = await chunks.next();
      while (!next.done && firstBytes <= PART_SIZE) {
        first.push(next.value);
        firstBytes += next.value.length;
        next = await chunks.next();
      }
      if (next.done) {
        await this.#putWhole(key, Buffer.concat(first));
      } else {
        const rest = next.value;
        await this.#putMultipart(
          key,
          (async function* () {
            yield* first;
            yield rest;
            yield* chunks;
          })(),
        );
      }
    } catch (err) {
      await this.#deleteKeys([key]).catch(() => {});
      if (err instanceof AtprotoError || err instanceof XrpcError) throw err;
      throw new BlobStoreUnavailableError('store the upload', err);
    }
    return {
      tempKey,
      cid: cidFromDigest(CODEC_RAW, hash.digest()),
      size,
      sniffedMimeType: sniffMimeType(head),
    };
  }

  async #putWhole(key: string, bytes: Buffer): Promise<void> {
    const { s3, client } = await this.#sdk();
    await client.send(
      new s3.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentLength: bytes.length }),
      { abortSignal: AbortSignal.timeout(this.#uploadTimeoutMs) },
    );
  }

  /**
   * Streams `chunks` into a multipart upload, a few parts in flight. Fails when the upload
   * stalls for the upload timeout, and never leaves an object cut short.
   */
  async #putMultipart(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const { storage, client } = await this.#sdk();
    const pipe = new PassThrough({ highWaterMark: 1024 * 1024 });
    const abortController = new AbortController();
    let stall: NodeJS.Timeout | undefined;
    const moved = () => {
      clearTimeout(stall);
      stall = setTimeout(
        () => abortController.abort(new Error('the upload to the bucket stalled')),
        this.#uploadTimeoutMs,
      );
    };
    moved();
    const upload = new storage.Upload({
      abortController,
      client,
      params: { Bucket: this.bucket, Key: key, Body: pipe },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    const uploaded = upload.done();
    let failed = false;
    // A failed upload stops reading its body: end the wait for room in the pipe too.
    pipe.on('error', () => {});
    uploaded.catch(() => {
      failed = true;
      pipe.destroy();
    });
    upload.on('httpUploadProgress', moved);
    try {
      for await (const chunk of chunks) {
        moved();
        // The upload stops reading (and may destroy the pipe) when a part fails; its error
        // comes from `uploaded` once its other parts have settled.
        if (failed || pipe.destroyed) break;
        if (!pipe.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              pipe.off('drain', done);
              pipe.off('close', done);
              resolve();
            };
            pipe.on('drain', done);
            pipe.on('close', done);
            if (pipe.destroyed) done();
          });
        }
        if (failed || pipe.destroyed) break;
      }
      const wholeBody = !failed && !pipe.destroyed;
      pipe.end();
      await uploaded;
      // Never keep an object cut short, whatever the upload made of its stopped body.
      if (!wholeBody) throw new Error('the upload stopped reading the blob');
    } catch (err) {
      pipe.destroy();
      await upload.abort().catch(() => {});
      await uploaded.catch(() => {});
      throw err;
    } finally {
      clearTimeout(stall);
    }
  }

  async makePermanent(did: string, tempKey: string, cid: Cid): Promise<void> {
    const { s3, client } = await this.#sdk();
    const source = S3BlobStore.tempKey(did, tempKey);
    const target = S3BlobStore.permanentKey(did, cid);
    try {
      await client.send(
        new s3.CopyObjectCommand({
          Bucket: this.bucket,
          Key: target,
          CopySource: `${this.bucket}/${encodeURIComponent(source).replace(/%2F/g, '/')}`,
        }),
      );
    } catch (err) {
      // A retry after the temporary object was already moved.
      if (isNotFound(err) && (await this.#exists(target))) return;
      throw new BlobStoreUnavailableError('make the blob permanent', err);
    }
    await this.#deleteKeys([source]).catch(() => {});
  }

  async deleteTemp(did: string, tempKey: string): Promise<void> {
    await this.#deleteKeys([S3BlobStore.tempKey(did, tempKey)]);
  }

  async hasPermanent(did: string, cid: Cid): Promise<boolean> {
    return this.#exists(S3BlobStore.permanentKey(did, cid));
  }

  /** True when a temporary upload is still in the bucket. */
  async hasTemp(did: string, tempKey: string): Promise<boolean> {
    return this.#exists(S3BlobStore.tempKey(did, tempKey));
  }

  async read(did: string, cid: Cid): Promise<BlobReadResult | undefined> {
    const { s3, client } = await this.#sdk();
    try {
      const out = await client.send(
        new s3.GetObjectCommand({ Bucket: this.bucket, Key: S3BlobStore.permanentKey(did, cid) }),
      );
      if (!out.Body) return undefined;
      return { size: Number(out.ContentLength ?? 0), stream: out.Body as Readable };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new BlobStoreUnavailableError('read the blob', err);
    }
  }

  async delete(did: string, cids: Cid[]): Promise<void> {
    await this.#deleteKeys(cids.map((cid) => S3BlobStore.permanentKey(did, cid)));
  }

  async deleteAll(did: string): Promise<void> {
    for (const prefix of [`blocks/${did}/`, `tmp/${did}/`]) {
      const keys: string[] = [];
      for await (const object of this.list(prefix)) keys.push(object.key);
      await this.#deleteKeys(keys);
    }
  }

  async sweepTemp(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    const old: string[] = [];
    for await (const object of this.list('tmp/')) {
      if (object.lastModifiedMs < cutoff) old.push(object.key);
    }
    await this.#deleteKeys(old);
    return old.length;
  }

  /** Every permanent blob, by account (for moving them and for the backup). */
  async *listPermanent(): AsyncGenerator<{ did: string; cid: string; size: number }> {
    for await (const object of this.list('blocks/')) {
      const [, did, cid] = object.key.split('/');
      if (did && cid) yield { did, cid, size: object.size };
    }
  }

  /** Total bytes of permanent blobs (the blob-bytes metric). */
  async storedBytes(): Promise<number> {
    let total = 0;
    for await (const object of this.list('blocks/')) total += object.size;
    return total;
  }

  async *list(prefix: string): AsyncGenerator<{ key: string; size: number; lastModifiedMs: number }> {
    const { s3, client } = await this.#sdk();
    let token: string | undefined;
    do {
      const page = await client.send(
        new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        yield { key: object.Key, size: object.Size ?? 0, lastModifiedMs: object.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Writes a whole object from a stream of known or unknown length (server backups). */
  async putObject(key: string, body: Readable): Promise<void> {
    const { storage, client } = await this.#sdk();
    await new storage.Upload({
      client,
      params: { Bucket: this.bucket, Key: key, Body: body },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    }).done();
  }

  async #exists(key: string): Promise<boolean> {
    const { s3, client } = await this.#sdk();
    try {
      await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw new BlobStoreUnavailableError('look the blob up', err);
    }
  }

  async #deleteKeys(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    const { s3, client } = await this.#sdk();
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      await client.send(
        new s3.DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
    }
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    if (!this.#loaded) return;
    const { client } = await this.#loaded;
    client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}
