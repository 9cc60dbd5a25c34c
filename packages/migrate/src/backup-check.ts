/**
 * A backup checks itself before anything trusts it (a restore, or a person with `verifyBackup`):
 * every block of repo.car hashes to its CID (the CAR reader checks each), the root is a commit of
 * the manifest's DID signed by the account's key (the one the manifest recorded, or the keys the
 * caller names from the DID's PLC log), the tree and every record are whole, every blob a record
 * references is in blobs/, and every stored blob hashes to its name. The first problem stops the
 * check with a sentence that names the DID and what is wrong.
 *
 * Browser-safe: the files come through BackupFiles (a folder in Node, backup-check.node.ts; a
 * chosen .tar or folder in the wizard), so both check a backup the same way.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { formatCid, parseCid } from '@portage/atproto/cid';
import { verifyCommitSignature } from '@portage/atproto/repo/commit';
import { RepoError } from '@portage/atproto/repo/errors';
import { stageRepo } from '@portage/atproto/repo/import';
import { MigrationError } from './errors.ts';

/** The files of a backup, by their path inside it ("repo.car", "blobs/<cid>", ...). */
export interface BackupFiles {
  /** Where the backup is, for messages (a folder, a file name). */
  readonly where: string;
  /** The file's bytes as a stream, or undefined when it is not there. */
  read(path: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /** The names of the files in a folder of the backup; empty when there is no such folder. */
  list(folder: string): Promise<string[]>;
}

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

export async function checkBackup(files: BackupFiles, opts: VerifyBackupOptions = {}): Promise<BackupReport> {
  const dir = files.where;
  const manifest = await readManifest(files);
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
    const car = await files.read('repo.car');
    if (!car) throw damaged('repo.car is missing');
    staged = await stageRepo(car, { did, signingKeys: keys });
  } catch (err) {
    if (err instanceof MigrationError) throw err;
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

  const names = (await files.list('blobs')).filter((n) => !n.startsWith('.'));
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
    const body = await files.read(`blobs/${name}`);
    if (!body) throw damaged(`blobs/${name} could not be read`);
    const got = await sha256Of(body);
    if (got.length !== expected.length || got.some((b, i) => b !== expected[i]))
      throw damaged(`blob ${name} does not match its CID (its bytes changed)`);
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

/** The account a backup is of (its manifest), or a sentence saying why it is not a backup. */
export async function backupDid(files: BackupFiles): Promise<string> {
  const dir = files.where;
  const manifest = await readManifest(files);
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

async function readManifest(files: BackupFiles): Promise<Manifest> {
  const body = await files.read('manifest.json');
  if (!body) throw notABackup(files.where, 'is missing');
  try {
    return JSON.parse(await new Response(body).text()) as Manifest;
  } catch (err) {
    throw notABackup(files.where, 'does not parse', err);
  }
}

async function sha256Of(body: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const hash = sha256.create();
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return hash.digest();
    hash.update(value);
  }
}

function notABackup(where: string, problem: string, err?: unknown): MigrationError {
  return new MigrationError(
    'BackupInvalid',
    `${where} is not a Portage backup: its manifest.json ${problem}`,
    { kind: 'need-input', field: 'backup', reason: 'not-found', nothingChanged: true },
    err === undefined ? undefined : { cause: err },
  );
}
