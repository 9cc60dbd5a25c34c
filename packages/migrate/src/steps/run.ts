/**
 * What the steps of one move share. `RunContext` is fixed for the run (the options, checked; the
 * environment); `RunState` is what the steps learn and hand on, in order: the account (resolve),
 * the sessions (sign-in), the new server (inspect-new), and the journal, the part of the state
 * that outlives the run. Each step is a function of both, so what a step reads and writes is
 * written where it is called.
 */
import type { DidDocument } from '@portage/atproto/identity/did-document';
import type { DidResolver } from '@portage/atproto/identity/did-resolver';
import type { BackupSink } from '../backup.ts';
import type { BlobPrefetch } from '../blobs.ts';
import type { MigrationEnvironment, MigrationOptions } from '../environment.ts';
import type { MigrationEvent, MissingBlob, StepName } from '../events.ts';
import { type Journal, saveJournal } from '../journal.ts';
import type { PdsSession } from '../session.ts';
import type { BlobSizes } from './checks.ts';

export interface RunContext {
  readonly options: MigrationOptions;
  readonly env: MigrationEnvironment;
  /** The new server's URL, checked. */
  readonly to: string;
  /** The old server given by the caller, checked; undefined to take it from the DID document. */
  readonly fromPds: string | undefined;
  readonly plcUrl: string;
  readonly fetch: typeof fetch;
  readonly didResolver: DidResolver;
  /** Parallel blob transfers. */
  readonly concurrency: number;
  /** The longest rate-limit pause waited out (see RateGate). */
  readonly longestWaitMs: number;
  /** Aborted when the run ends: background work (the early repo download) stops. */
  readonly stopping: AbortSignal;
  emit(event: MigrationEvent): void;
}

export interface LatestCommit {
  cid: string;
  rev: string;
}

export interface NewServerDescription {
  did?: unknown;
  inviteCodeRequired?: unknown;
  availableUserDomains?: unknown;
  /** Not in the lexicon: the upload limit in bytes, as Portage states it. */
  blobUploadLimit?: unknown;
}

export interface RunState {
  /** The step under way, named in a failure. */
  current: StepName;
  did: string;
  doc?: DidDocument;
  /** Loaded (or begun) by resolve; saved with `saveState` whenever a step learns something lasting. */
  journal?: Journal;
  /** True when the DID already points to the new server (an earlier run moved it). */
  identityMoved: boolean;
  /** Frees the storage lock on this account, once taken. */
  releaseLock?: () => Promise<void>;
  old?: PdsSession;
  neu?: PdsSession;
  newPassword: string;
  /**
   * Signing in to the new server (it succeeds when an earlier run created the account there),
   * started with the old server's sign-in: undefined when it succeeded, else the error.
   */
  newLogin?: Promise<unknown>;
  /** The new server's describeServer, asked while the old server checks the password. */
  description?: Promise<NewServerDescription>;
  newServiceDid: string;
  inviteRequired: boolean;
  /** The handle domains the new server gives (describeServer). */
  userDomains?: string[];
  /** The largest blob the new server takes, when its describeServer says. */
  blobUploadLimit?: number;
  /** The old server's blob sizes, measured from the start when the new server states a limit. */
  blobSizes?: Promise<BlobSizes | undefined>;
  /** The old server's clock minus this device's, when known (the checks step measures it). */
  oldClockOffsetMs?: number;
  /** The new account's handle and email, checked; `holder` is who holds the handle there now. */
  newAccount?: { handle: string; email: string; holder?: string };
  backup?: BackupSink;
  /**
   * The old server's repository export into the backup, started as soon as the account is
   * resolved: getRepo is public, so it runs while the sign-ins and the account creation happen,
   * and the import then reads the backup. Best effort: it resolves either way, to the old head the
   * backup's CAR was exported at when it stored it (or had it), else undefined (the repo step
   * fetches again whatever it did not get).
   */
  repoDownload?: Promise<LatestCommit | undefined>;
  /** Fills the backup from the old server while the new one imports the repository. */
  prefetch?: BlobPrefetch;
  /** Blobs that failed for good in this run, with why. */
  failedBlobs: Map<string, MissingBlob>;
}

export function initialState(): RunState {
  return {
    current: 'resolve',
    did: '',
    identityMoved: false,
    newPassword: '',
    newServiceDid: '',
    inviteRequired: false,
    failedBlobs: new Map(),
  };
}

/** What a step says when it ends: a summary, or that it had nothing to do. */
export type StepOutcome = string | { summary: string; skipped: true };

/** Writes the journal as the state now has it. */
export async function saveState(ctx: RunContext, state: RunState): Promise<void> {
  await saveJournal(ctx.env.storage, state.journal!);
}

/** Thrown when the old repo changed while we copied it: the data steps run again. */
export class RepoMoved extends Error {}
/** Thrown to end the run early without a failure (waiting for the PLC token). */
export class Waiting extends Error {}

/** The repository's media type. */
export const CAR = 'application/vnd.ipld.car';

/**
 * Asks for a repository export without gzip. The reference PDS compresses CARs in its own
 * process: on a 2-core machine that delayed the export's first byte by about 200 ms and the
 * import's start by about 80 ms, and took CPU from both ends that the rest of the migration
 * needed. The bytes saved are few beside the blobs that follow (media, which no server
 * compresses). A browser ignores this header and negotiates on its own.
 */
export const UNCOMPRESSED_REPO = { 'accept-encoding': 'identity' } as const;

/** The old server's head. */
export function oldHead(state: RunState): Promise<LatestCommit> {
  return state.old!.query<LatestCommit>('com.atproto.sync.getLatestCommit', { did: state.did });
}
