/**
 * com.atproto.repo.importRepo, done the careful way: the CAR streams into a scratch staging
 * file (never whole in memory), the repository is verified completely (the commit names this
 * account's DID and is signed by a key the DID has held; every MST node and record present,
 * hash-checked and canonical), and only then replaces the account's repository in one
 * transaction. A CAR that fails any check leaves the account exactly as it was.
 *
 * Re-importing is safe: the whole repository is replaced each time, so importing the same
 * CAR twice, or a newer export after an interrupted migration, ends in the same state as a
 * single import of the last one. Blobs already uploaded stay; the records' blob references
 * are indexed so listMissingBlobs can say what is still to come.
 */
import { join } from 'node:path';
import { type Cid, formatCid, parseCid } from '@portage/atproto/cid';
import { decodeCbor } from '@portage/atproto/data/cbor';
import { findBlobRefs } from '@portage/atproto/data/blob';
import { RepoError } from '@portage/atproto/repo/errors';
import { importRepo, type VerifiedRepo } from '@portage/atproto/repo/import';
import type { BlobStore } from '../blobstore/blobstore.ts';
import type { SqliteDb } from '../actor-store/db.ts';
import { XrpcError } from '../xrpc/errors.ts';
import { type KeyHistorySources, signingKeysHeldBy } from './key-history.ts';
import type { RepoDbAccess } from './repo-db.ts';
import { StagingBlockStore } from './staging-store.ts';

/** Default cap on an imported CAR: large enough for any real account (PDS_MAX_REPO_IMPORT_SIZE overrides). */
export const DEFAULT_MAX_REPO_IMPORT_BYTES = 4 * 1024 * 1024 * 1024;

export interface RepoImportDeps extends KeyHistorySources {
  repoDb: RepoDbAccess;
  blobstore: BlobStore;
  /** Directory for scratch staging files. */
  stagingDirectory: string;
}

export interface ImportSummary {
  commit: Cid;
  rev: string;
  records: number;
  blocks: number;
  /** Distinct blobs the records reference. */
  expectedBlobs: number;
}

/** Directory for staging files under the PDS data directory. */
export function stagingDirectoryFor(dataDirectory: string): string {
  return join(dataDirectory, 'import-staging');
}

/**
 * Verifies the CAR in `body` as `did`'s repository and makes it the account's repository.
 * Throws a 400 whose error name says what was wrong (WrongDid, BadSignature, MissingRecord,
 * MissingNode, BadBlockHash, TruncatedCar, ...).
 */
export async function importRepository(
  deps: RepoImportDeps,
  did: string,
  body: AsyncIterable<Uint8Array>,
): Promise<ImportSummary> {
  const keys = await signingKeysHeldBy(deps, did);
  if (keys.length === 0) {
    throw new XrpcError(
      400,
      'InvalidDid',
      `Could not resolve a signing key for ${did}, so the import cannot be verified`,
    );
  }
  const staging = new StagingBlockStore(deps.stagingDirectory);
  try {
    let verified: VerifiedRepo;
    try {
      verified = await importRepo(body, { did, signingKeys: keys, staging });
    } catch (err) {
      throw importError(err);
    }
    const summary = await deps.repoDb.write(did, (db) => replaceRepository(db, did, verified));
    await promoteReferencedBlobs(deps, did);
    return summary;
  } finally {
    staging.dispose();
  }
}

function importError(err: unknown): unknown {
  if (err instanceof RepoError) {
    const prefix = err.code === 'BadSignature' ? 'Commit signature is not valid for this DID' : 'Invalid repository';
    return new XrpcError(400, err.code, `${prefix}: ${err.message}`);
  }
  return err;
}

/**
 * One transaction: every block, record and record->blob link of the old repository out, the
 * verified repository in, the root moved to its commit. Blob rows (uploads) are kept.
 */
function replaceRepository(db: SqliteDb, did: string, repo: VerifiedRepo): ImportSummary {
  const insertBlock = db.prepare('INSERT OR IGNORE INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)');
  const insertRecord = db.prepare(
    'INSERT INTO record (uri, cid, collection, rkey, repo_rev, indexed_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const linkBlob = db.prepare('INSERT OR IGNORE INTO record_blob (blob_cid, record_uri) VALUES (?, ?)');
  const now = new Date().toISOString();
  let blocks = 0;
  let records = 0;
  db.transaction(() => {
    db.exec('DELETE FROM repo_block; DELETE FROM record; DELETE FROM record_blob;');
    for (const block of repo.blocks()) {
      insertBlock.run(block.cid.bytes, repo.rev, block.bytes.length, block.bytes);
      blocks++;
    }
    for (const record of repo.records()) {
      const uri = `at://${did}/${record.collection}/${record.rkey}`;
      insertRecord.run(uri, formatCid(record.cid), record.collection, record.rkey, repo.rev, now);
      for (const ref of findBlobRefs(decodeCbor(record.bytes))) linkBlob.run(ref.cid, uri);
      records++;
    }
    db.prepare(
      `INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev, indexed_at = excluded.indexed_at`,
    ).run(did, formatCid(repo.commitCid), repo.rev, now);
  })();
  const expected = db.prepare('SELECT count(DISTINCT blob_cid) AS n FROM record_blob').get() as { n: number };
  return { commit: repo.commitCid, rev: repo.rev, records, blocks, expectedBlobs: expected.n };
}

/**
 * Uploads arrive as temporary blobs (a blob no record references is garbage). During a
 * migration the records came first, by import, so an upload the records reference is part of
 * the repository already: move it to permanent storage, so neither the temporary-blob sweep
 * nor getBlob treats it as an orphan. Idempotent; called after imports, by
 * listMissingBlobs/checkAccountStatus and at activation.
 */
export async function promoteReferencedBlobs(deps: Pick<RepoImportDeps, 'repoDb' | 'blobstore'>, did: string) {
  const pending = deps.repoDb.read(did, (db) =>
    db
      .prepare(
        `SELECT DISTINCT blob.cid AS cid, blob.temp_key AS tempKey FROM blob
         JOIN record_blob ON record_blob.blob_cid = blob.cid WHERE blob.temp_key IS NOT NULL`,
      )
      .all(),
  ) as { cid: string; tempKey: string }[];
  if (pending.length === 0) return;
  await deps.repoDb.write(did, async (db) => {
    const clear = db.prepare('UPDATE blob SET temp_key = NULL WHERE cid = ? AND temp_key = ?');
    for (const blob of pending) {
      await deps.blobstore.makePermanent(did, blob.tempKey, parseCid(blob.cid));
      clear.run(blob.cid, blob.tempKey);
    }
  });
}

/** A page of blobs the records reference that have not been uploaded, ordered by CID. */
export function listMissingBlobs(
  repoDb: RepoDbAccess,
  did: string,
  opts: { limit: number; cursor?: string },
): { blobs: { cid: string; recordUri: string }[]; cursor: string | undefined } {
  const rows = repoDb.read(did, (db) =>
    db
      .prepare(
        `SELECT record_blob.blob_cid AS cid, min(record_blob.record_uri) AS recordUri FROM record_blob
         LEFT JOIN blob ON blob.cid = record_blob.blob_cid
         WHERE blob.cid IS NULL AND record_blob.blob_cid > ?
         GROUP BY record_blob.blob_cid ORDER BY record_blob.blob_cid LIMIT ?`,
      )
      .all(opts.cursor ?? '', opts.limit),
  ) as { cid: string; recordUri: string }[];
  return { blobs: rows, cursor: rows.length === opts.limit ? rows.at(-1)?.cid : undefined };
}

/** What an imported CAR may weigh: PDS_MAX_REPO_IMPORT_SIZE, else a limit any real account fits in. */
export function maxImportBytes(configured: number | undefined): number {
  return configured ?? DEFAULT_MAX_REPO_IMPORT_BYTES;
}
