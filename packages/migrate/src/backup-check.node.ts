/**
 * A backup checks itself before anything trusts it (a restore, or a person with `verifyBackup`):
 * every block of repo.car hashes to its CID (the CAR reader checks each), the root is a commit of
 * the manifest's DID signed by the account's key (the one the manifest recorded, or the keys the
 * caller names from the DID's PLC log), the tree and every record are whole, every blob a record
 * references is in blobs/, and every stored blob hashes to its name. The first problem stops the
 * check with a sentence that names the DID and what is wrong.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatCid, parseCid } from '@portage/atproto/cid';
import { verifyCommitSignature } from '@portage/atproto/repo/commit';
import { RepoError } from '@portage/atproto/repo/errors';
import { stageRepo } from '@portage/atproto/repo/import';
import { MigrationError } from './errors.ts';

export interface BackupReport {
  did: string;
  repoCommit: string;
  rev: string;
  /** Blocks of the repository: the commit, its tree nodes and records. */
  blocks: number;
  records: number;
  /** Blobs stored in blobs/. */
  blobs: number;
  /** The blobs the repository's records reference (all of them are stored). */
  referencedBlobs: string[];
  /** The key the commit signature was checked against; undefined when none was known. */
  signedBy?: string;
}

export interface VerifyBackupOptions {
  /** The account the backup must be of. */
  did?: string;
  /**
   * The keys the commit may be signed with (did:key): the #atproto keys the DID has held. Default:
   * the key the manifest recorded; with neither, the signature is not checked (`signedBy` unset).
   */
  signingKeys?: readonly string[];
  /** With `signingKeys`, the key the manifest recorded counts too (did:web keeps no key history). */
  orRecordedKey?: boolean;
}

interface Manifest {
  did?: unknown;
  repoCommit?: unknown;
  signingKey?: unknown;
}

export async function verifyBackup(dir: string, opts: VerifyBackupOptions = {}): Promise<BackupReport> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    throw notABackup(dir, err);
  }
  const did = typeof manifest.did === 'string' ? manifest.did : undefined;
  if (!did) {
    throw new MigrationError('BackupInvalid', `the manifest.json in ${dir} names no account`, {
      kind: 'need-input',
      field: 'backup',
      reason: 'invalid',
      nothingChanged: true,
    });
  }
  if (opts.did !== undefined && opts.did !== did) {
    throw new MigrationError('BackupOfAnotherAccount', `the backup in ${dir} is of ${did}, not of ${opts.did}`, {
      kind: 'need-input',
      field: 'backup',
      reason: 'mismatch',
      nothingChanged: true,
    });
  }
  const damaged = (what: string, cause?: unknown) =>
    new MigrationError(
      'BackupDamaged',
      `the backup of ${did} in ${dir} is damaged: ${what}`,
      { kind: 'need-input', field: 'backup', reason: 'invalid', nothingChanged: true },
      cause === undefined ? undefined : { cause },
    );

  const recorded = typeof manifest.signingKey === 'string' ? [manifest.signingKey] : undefined;
  const keys =
    opts.signingKeys && opts.orRecordedKey && recorded
      ? [...opts.signingKeys, ...recorded]
      : (opts.signingKeys ?? recorded ?? null);
  let staged: Awaited<ReturnType<typeof stageRepo>>;
  try {
    const car = Readable.toWeb(createReadStream(join(dir, 'repo.car'))) as ReadableStream<Uint8Array>;
    staged = await stageRepo(car, { did, signingKeys: keys });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw damaged('repo.car is missing', err);
    if (err instanceof RepoError) {
      if (err.code === 'BadBlockHash')
        throw damaged(`a block of repo.car does not match its hash (${err.message})`, err);
      if (err.code === 'WrongDid') throw damaged(`repo.car holds another account's repository (${err.message})`, err);
      if (err.code === 'BadSignature') {
        throw damaged(
          `the repository commit is not signed by any key ${did} has held (${(keys ?? []).join(', ')})`,
          err,
        );
      }
      throw damaged(`repo.car: ${err.message}`, err);
    }
    throw err;
  }
  const repoCommit = formatCid(staged.commitCid);
  if (typeof manifest.repoCommit === 'string' && manifest.repoCommit !== repoCommit) {
    throw damaged(`repo.car ends at commit ${repoCommit}, but the manifest records ${manifest.repoCommit}`);
  }
  let signedBy: string | undefined;
  for (const key of keys ?? []) {
    if (await verifyCommitSignature(staged.commit, key)) {
      signedBy = key;
      break;
    }
  }

  const referencedBy = new Map<string, string>();
  let counts: { records: number; nodes: number };
  try {
    counts = staged.verifyTree({
      record(record, blobRefs) {
        for (const ref of blobRefs) if (!referencedBy.has(ref.cid)) referencedBy.set(ref.cid, record.path);
      },
    });
  } catch (err) {
    if (err instanceof RepoError) throw damaged(`repo.car: ${err.message}`, err);
    throw err;
  }

  let names: string[];
  try {
    names = (await readdir(join(dir, 'blobs'))).filter((n) => !n.startsWith('.'));
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    names = [];
  }
  const stored = new Set(names);
  for (const [cid, path] of referencedBy) {
    if (!stored.has(cid)) throw damaged(`blob ${cid}, which the record ${path} references, is missing from blobs/`);
  }
  for (const name of names) {
    let expected: Uint8Array;
    try {
      expected = parseCid(name).digest.contents;
    } catch (err) {
      throw damaged(`blobs/${name} is not named by a CID`, err);
    }
    const hash = createHash('sha256');
    await pipeline(createReadStream(join(dir, 'blobs', name)), hash);
    if (!hash.digest().equals(expected)) throw damaged(`blob ${name} does not match its CID (its bytes changed)`);
  }
  return {
    did,
    repoCommit,
    rev: staged.rev,
    blocks: 1 + counts.nodes + counts.records,
    records: counts.records,
    blobs: names.length,
    referencedBlobs: [...referencedBy.keys()],
    ...(signedBy ? { signedBy } : {}),
  };
}

/** The account a backup folder is of (its manifest), or a sentence saying why it is not a backup. */
export async function backupAccountDid(dir: string): Promise<string> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    throw notABackup(dir, err);
  }
  if (typeof manifest.did !== 'string' || !manifest.did.startsWith('did:')) {
    throw new MigrationError('BackupInvalid', `the manifest.json in ${dir} names no account`, {
      kind: 'need-input',
      field: 'backup',
      reason: 'invalid',
      nothingChanged: true,
    });
  }
  return manifest.did;
}

function notABackup(dir: string, err: unknown): MigrationError {
  return new MigrationError(
    'BackupInvalid',
    `${dir} is not a Portage backup: its manifest.json ${(err as { code?: string }).code === 'ENOENT' ? 'is missing' : 'does not parse'}`,
    { kind: 'need-input', field: 'backup', reason: 'not-found', nothingChanged: true },
    { cause: err },
  );
}
