/**
 * The blob index of each account: which blobs were uploaded (temporary until a committed record
 * references them), which records reference which blobs, and the moves between the blobstore's
 * temporary and permanent areas that go with it. The bytes live in the blobstore.
 */
import { type Cid, formatCid, parseCid } from '@portage/atproto/cid';
import type { BlobStore } from '../blobstore/blobstore.ts';
import type { OpenStores } from './open-stores.ts';
import type { BlobInfo } from './types.ts';
import type { WriteLocks } from './write-lock.ts';

export class BlobIndex {
  private readonly stores: OpenStores;
  private readonly locks: WriteLocks;
  private readonly blobstore: BlobStore;

  constructor(stores: OpenStores, locks: WriteLocks, blobstore: BlobStore) {
    this.stores = stores;
    this.locks = locks;
    this.blobstore = blobstore;
  }

  /** Metadata of a stored blob of this account (permanent or not), or undefined. */
  getBlobInfo(did: string, cid: Cid): (BlobInfo & { temporary: boolean; takedownRef: string | null }) | undefined {
    const row = this.stores.existing(did).sql.getBlob.get(formatCid(cid)) as
      | { cid: string; mime_type: string; size: number; temp_key: string | null; takedown_ref: string | null }
      | undefined;
    if (!row) return undefined;
    return {
      cid,
      mimeType: row.mime_type,
      size: row.size,
      temporary: row.temp_key !== null,
      takedownRef: row.takedown_ref,
    };
  }

  /** Sets or clears (null) a blob's takedown; false when the account has no such blob. */
  setBlobTakedown(did: string, cid: Cid, ref: string | null): boolean {
    return (
      this.stores.existing(did).stmt('UPDATE blob SET takedown_ref = ? WHERE cid = ?').run(ref, formatCid(cid))
        .changes === 1
    );
  }

  /** CIDs of blobs referenced by records; with `since`, by records written after that rev. */
  listBlobs(did: string, opts: { since?: string; limit: number; cursor?: string }): string[] {
    const handle = this.stores.existing(did);
    const params: (string | number)[] = [];
    let where = '1 = 1';
    if (opts.since !== undefined) {
      where += ' AND record.repo_rev > ?';
      params.push(opts.since);
    }
    if (opts.cursor !== undefined) {
      where += ' AND record_blob.blob_cid > ?';
      params.push(opts.cursor);
    }
    params.push(opts.limit);
    const rows = handle
      .stmt(
        `SELECT DISTINCT record_blob.blob_cid AS cid FROM record_blob
         JOIN record ON record.uri = record_blob.record_uri
         WHERE ${where} ORDER BY record_blob.blob_cid LIMIT ?`,
      )
      .all(...params) as { cid: string }[];
    return rows.map((r) => r.cid);
  }

  /** A page of blobs the records reference that have not been uploaded, ordered by CID. */
  listMissingBlobs(
    did: string,
    opts: { limit: number; cursor?: string },
  ): { blobs: { cid: string; recordUri: string }[]; cursor: string | undefined } {
    const rows = this.stores
      .existing(did)
      .stmt(
        `SELECT record_blob.blob_cid AS cid, min(record_blob.record_uri) AS recordUri FROM record_blob
         LEFT JOIN blob ON blob.cid = record_blob.blob_cid
         WHERE blob.cid IS NULL AND record_blob.blob_cid > ?
         GROUP BY record_blob.blob_cid ORDER BY record_blob.blob_cid LIMIT ?`,
      )
      .all(opts.cursor ?? '', opts.limit) as { cid: string; recordUri: string }[];
    return { blobs: rows, cursor: rows.length === opts.limit ? rows.at(-1)?.cid : undefined };
  }

  /**
   * Streams an upload into the blobstore as a temporary blob and records it. The type stored is
   * the sniffed one when recognised, else the client's. Re-uploading a stored blob is a no-op.
   */
  async uploadBlob(
    did: string,
    body: AsyncIterable<Uint8Array>,
    declaredMimeType: string | undefined,
    maxSize: number,
  ): Promise<BlobInfo> {
    this.stores.existing(did);
    const stored = await this.blobstore.putTemp(did, body, maxSize);
    // Looked up again after the upload: the database may have been closed and reopened meanwhile.
    const handle = this.stores.existing(did);
    const mimeType = stored.sniffedMimeType ?? declaredMimeType ?? 'application/octet-stream';
    const cidText = formatCid(stored.cid);
    const existing = handle.sql.getBlob.get(cidText) as { mime_type: string; temp_key: string | null } | undefined;
    if (existing) {
      await this.blobstore.deleteTemp(did, stored.tempKey);
      return { cid: stored.cid, mimeType: existing.mime_type, size: stored.size };
    }
    handle.sql.insertBlob.run(cidText, mimeType, stored.size, stored.tempKey, new Date().toISOString());
    if (handle.sql.blobInUse.get(cidText)) {
      // Records already reference it (a repository imported before its blobs were uploaded):
      // it is part of the repository now, not a temporary upload.
      await this.locks.run(did, async () => {
        await this.blobstore.makePermanent(did, stored.tempKey, stored.cid);
        handle.sql.makeBlobPermanent.run(cidText);
      });
    }
    return { cid: stored.cid, mimeType, size: stored.size };
  }

  /** Opens a blob of this account for reading, with its recorded type; undefined when absent. */
  async readBlob(
    did: string,
    cid: Cid,
  ): Promise<{ mimeType: string; size: number; stream: AsyncIterable<Uint8Array> } | undefined> {
    const info = this.getBlobInfo(did, cid);
    // A taken-down blob is answered as absent, as the reference answers it.
    if (!info || info.temporary || info.takedownRef !== null) return undefined;
    const read = await this.blobstore.read(did, cid);
    if (!read) return undefined;
    return { mimeType: info.mimeType, size: read.size, stream: read.stream };
  }

  /**
   * Uploads arrive as temporary blobs (a blob no record references is garbage). During a
   * migration the records came first, by import, so an upload the records reference is part of
   * the repository already: move it to permanent storage, so neither the temporary-blob sweep
   * nor getBlob treats it as an orphan. Idempotent.
   */
  async promoteReferencedBlobs(did: string): Promise<void> {
    const pending = this.stores
      .existing(did)
      // Through the partial index of temporary blobs: only they are read, however many are stored.
      .stmt(
        `SELECT cid, temp_key AS tempKey FROM blob WHERE temp_key IS NOT NULL
         AND EXISTS (SELECT 1 FROM record_blob WHERE record_blob.blob_cid = blob.cid)`,
      )
      .all() as { cid: string; tempKey: string }[];
    if (pending.length === 0) return;
    await this.locks.run(did, async () => {
      const handle = this.stores.existing(did);
      const clear = handle.stmt('UPDATE blob SET temp_key = NULL WHERE cid = ? AND temp_key = ?');
      for (const blob of pending) {
        await this.blobstore.makePermanent(did, blob.tempKey, parseCid(blob.cid));
        clear.run(blob.cid, blob.tempKey);
      }
    });
  }

  /** Removes temporary uploads older than `maxAgeMs` that no committed record references. */
  async sweepTemporaryBlobs(maxAgeMs: number): Promise<number> {
    const cutoff = new Date(Date.now() - maxAgeMs).toISOString();
    let removed = 0;
    for (const [did, handle] of this.stores.snapshot()) {
      const rows = handle.db
        .prepare('SELECT cid, temp_key FROM blob WHERE temp_key IS NOT NULL AND created_at < ?')
        .all(cutoff) as { cid: string; temp_key: string }[];
      for (const row of rows) {
        await this.locks.run(did, async () => {
          if (this.stores.peek(did) !== handle) return; // closed meanwhile; the next sweep sees it
          if (handle.sql.blobInUse.get(row.cid)) return;
          handle.sql.deleteBlob.run(row.cid);
          await this.blobstore.deleteTemp(did, row.temp_key);
          removed++;
        });
      }
    }
    // Files whose rows are gone (or whose account database is closed) age out on disk.
    removed += await this.blobstore.sweepTemp(maxAgeMs * 2);
    return removed;
  }
}
