/**
 * The migration engine: moves one account from its PDS to another, as a plan of steps that are
 * each idempotent and re-entrant. Nothing is assumed from a previous run: every step first asks
 * the servers where things stand (checkAccountStatus, listMissingBlobs, the DID document and PLC
 * log) and only does what is still missing, so killing the process at any moment and running it
 * again finishes the job with nothing duplicated or lost. The journal (through MigrationStorage)
 * only keeps what the servers cannot tell us: the old server's URL once the DID points away from
 * it, blobs that failed for good, a signed-but-unsubmitted PLC operation.
 *
 * Ordering is the safety argument: everything reversible (new account, repo, blobs, preferences)
 * happens and is verified before the one irreversible step (the identity update), and the PLC
 * token is requested only then, so it cannot expire while data moves. Deactivating the old
 * account comes last and on its own: its failure never undoes a finished migration.
 *
 * Runs unchanged in Node and browsers: only fetch, web streams and @portage/atproto are used;
 * storage, backup, DNS and prompting come in through MigrationEnvironment.
 */
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import { generateSigningKey } from '@portage/atproto/crypto';
import {
  type DidDocument,
  getAtprotoSigningKey,
  getHandle,
  getPdsEndpoint,
  normalizeServiceUrl,
  sameServiceUrl,
} from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { IdentityError } from '@portage/atproto/identity/errors';
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { PlcClient } from '@portage/atproto/plc/client';
import { XrpcClient, XrpcClientError } from '@portage/atproto/xrpc/client';
import { retryDelayFromHeaders } from '@portage/atproto/xrpc/rate-limit';
import type { BackupSink } from './backup.ts';
import { BlobPrefetch, copyMissingBlobs, missingBlobsPage } from './blobs.ts';
import { MigrationError } from './errors.ts';
import {
  type EventSink,
  type MigrationEvent,
  type MigrationStatus,
  type MissingBlob,
  STEP_TITLES,
  type StepName,
} from './events.ts';
import { type Journal, journalKey, loadJournal, saveJournal } from './journal.ts';
import { countingStream, ProgressTracker } from './progress.ts';
import { describeError, type RetryOptions, sleep, withRetry } from './retry.ts';
import { PdsSession, type SessionInfo } from './session.ts';
import type { MigrationStorage } from './storage.ts';

export interface MigrationOptions {
  /** The account: a handle or a DID. */
  from: string;
  /** Base URL of the new PDS. */
  to: string;
  /** Base URL of the old PDS, skipping its lookup in the DID document. */
  fromPds?: string;
  /** PLC directory (default https://plc.directory). */
  plcUrl?: string;
  newHandle?: string;
  newEmail?: string;
  inviteCode?: string;
  /** Parallel blob transfers (default 8; the pool shrinks on its own when servers push back). */
  concurrency?: number;
}

export interface MigrationCredentials {
  oldPassword(): Promise<string>;
  newPassword(): Promise<string>;
  /** The code the old server emailed for a sign-in (email 2FA); undefined when it cannot be asked now. */
  authFactorToken(): Promise<string | undefined>;
  /**
   * The PLC token. Called first with `requested = false` (a token given up front); if that yields
   * nothing the engine has the old server email one and calls again with `requested = true`.
   * Undefined then means "cannot ask now": the run stops with status waiting-for-plc-token.
   */
  plcToken(requested: boolean): Promise<string | undefined>;
}

/** A rotation key the user holds: loaded when it exists, else generated and saved (shown once). */
export interface RecoveryKeyStore {
  load(): Promise<ExportableSigningKey | undefined>;
  /** Saves a new key and says where, for the notice. */
  save(key: ExportableSigningKey): Promise<string>;
}

export interface MigrationEnvironment {
  storage: MigrationStorage;
  credentials: MigrationCredentials;
  onEvent: EventSink;
  fetch?: typeof fetch;
  /** TXT lookups for handle resolution (node:dns in Node, DNS-over-HTTPS in browsers). */
  resolveTxt?: (name: string) => Promise<string[]>;
  /** Opens the backup for the resolved DID; absent = no backup. */
  openBackup?: (did: string) => Promise<BackupSink>;
  recoveryKey?: RecoveryKeyStore;
}

export interface MigrationResult {
  status: MigrationStatus;
  did?: string;
  message: string;
  missingBlobs?: MissingBlob[];
}

interface LatestCommit {
  cid: string;
  rev: string;
}

interface AccountStatus {
  activated: boolean;
  validDid: boolean;
  repoCommit: string;
  repoRev: string;
  repoBlocks: number;
  indexedRecords: number;
  expectedBlobs: number;
  importedBlobs: number;
}

interface NewServerDescription {
  did?: unknown;
  inviteCodeRequired?: unknown;
  availableUserDomains?: unknown;
}

interface RecommendedCredentials {
  rotationKeys?: string[];
  alsoKnownAs?: string[];
  verificationMethods?: Record<string, string>;
  services?: Record<string, { type: string; endpoint: string }>;
}

/** Thrown when the old repo changed while we copied it: the data steps run again. */
class RepoMoved extends Error {}
/** Thrown to end the run early without a failure (waiting for the PLC token). */
class Waiting extends Error {}

const CAR = 'application/vnd.ipld.car';
const DATA_ROUNDS = 3;
/** What the new server's sign-in check gives when that server does not host the DID at all. */
const NOT_ON_NEW_SERVER = Symbol('not on the new server');
/** PLC tokens the old server may refuse in one run before it stops asking for new ones. */
const MAX_PLC_TOKEN_REFUSALS = 3;

/**
 * Asks for a repository export without gzip. The reference PDS compresses CARs in its own
 * process: on a 2-core machine that delayed the export's first byte by about 200 ms and the
 * import's start by about 80 ms, and took CPU from both ends that the rest of the migration
 * needed. The bytes saved are few beside the blobs that follow (media, which no server
 * compresses). A browser ignores this header and negotiates on its own.
 */
export const UNCOMPRESSED_REPO = { 'accept-encoding': 'identity' } as const;

export async function migrate(options: MigrationOptions, env: MigrationEnvironment): Promise<MigrationResult> {
  return new Migration(options, env).run();
}

class Migration {
  readonly opts: MigrationOptions;
  readonly env: MigrationEnvironment;
  readonly to: string;
  /** The old server given with --from-pds, checked; undefined to take it from the DID document. */
  readonly fromPds: string | undefined;
  readonly plcUrl: string;
  readonly fetch: typeof fetch;
  readonly didResolver: DidResolver;
  did = '';
  doc: DidDocument | undefined;
  journal: Journal | undefined;
  old: PdsSession | undefined;
  neu: PdsSession | undefined;
  newServiceDid = '';
  inviteRequired = false;
  backup: BackupSink | undefined;
  /**
   * The old server's repository export into the backup, started as soon as the account is
   * resolved: getRepo is public, so it runs while the sign-ins and the account creation happen,
   * and the import then reads the backup. Best effort: it resolves either way, to the old head the
   * backup's CAR was exported at when it stored it (or had it), else undefined (copyRepo fetches
   * again whatever it did not get).
   */
  repoDownload: Promise<LatestCommit | undefined> | undefined;
  readonly #stopDownload = new AbortController();
  /** The new server's describeServer, asked while the old server checks the password. */
  description: Promise<NewServerDescription> | undefined;
  newPassword = '';
  /**
   * Signing in to the new server (it succeeds when an earlier run created the account there),
   * started with the old server's sign-in: undefined when it succeeded, else the error.
   */
  newLogin: Promise<unknown> | undefined;
  /** Fills the backup from the old server while the new one imports the repository. */
  prefetch: BlobPrefetch | undefined;
  identityMoved = false;
  /** Frees the storage lock on this account, once taken. */
  releaseLock: (() => Promise<void>) | undefined;
  failedBlobs = new Map<string, MissingBlob>();
  current: StepName = 'resolve';

  constructor(opts: MigrationOptions, env: MigrationEnvironment) {
    this.opts = opts;
    this.env = env;
    // Every URL is checked before anything runs, so a typo stops the run with nothing changed.
    this.to = checkedServiceUrl(opts.to, '--to');
    this.fromPds = opts.fromPds === undefined ? undefined : checkedServiceUrl(opts.fromPds, '--from-pds');
    this.plcUrl = checkedServiceUrl(opts.plcUrl ?? 'https://plc.directory', '--plc-url');
    this.fetch = env.fetch ?? globalThis.fetch.bind(globalThis);
    this.didResolver = new DidResolver({ plcUrl: this.plcUrl, fetch: this.fetch });
  }

  emit(event: MigrationEvent): void {
    this.env.onEvent(event);
  }

  async step(name: StepName, fn: () => Promise<string | { summary: string; skipped: true }>): Promise<void> {
    this.current = name;
    this.emit({ type: 'step-started', step: name, title: STEP_TITLES[name] });
    const result = await fn();
    if (typeof result === 'string') this.emit({ type: 'step-done', step: name, summary: result });
    else this.emit({ type: 'step-done', step: name, summary: result.summary, skipped: true });
  }

  skip(name: StepName, summary: string): void {
    this.emit({ type: 'step-started', step: name, title: STEP_TITLES[name] });
    this.emit({ type: 'step-done', step: name, summary, skipped: true });
  }

  async run(): Promise<MigrationResult> {
    try {
      return await this.#plan();
    } catch (err) {
      return this.#failed(err);
    } finally {
      this.#stopDownload.abort();
      await this.repoDownload;
      await this.prefetch?.stop();
      await this.releaseLock?.().catch(() => {});
    }
  }

  #failed(err: unknown): MigrationResult {
    if (err instanceof Waiting) {
      const message = err.message;
      this.emit({ type: 'finished', status: 'waiting-for-plc-token', message });
      return { status: 'waiting-for-plc-token', did: this.did, message };
    }
    const failure = toMigrationError(err, this.current);
    const missing = failure.code === 'MissingBlobs' ? [...this.failedBlobs.values()] : undefined;
    this.emit({
      type: 'step-failed',
      step: this.current,
      message: failure.message,
      next: failure.next,
      code: failure.code,
    });
    const message = `${failure.message}. ${failure.next}`;
    this.emit({ type: 'finished', status: 'failed', message, ...(missing ? { missingBlobs: missing } : {}) });
    return { status: 'failed', did: this.did, message, ...(missing ? { missingBlobs: missing } : {}) };
  }

  async #plan(): Promise<MigrationResult> {
    await this.step('resolve', () => this.resolve());
    this.old = new PdsSession(this.journal!.oldPds, this.did, this.fetch);
    // Neither needs a session: they run while the old server checks the password.
    this.description = this.#describeNew();
    this.description.catch(() => {}); // awaited by inspect-new
    if (this.env.openBackup) this.backup = await this.env.openBackup(this.did);
    if (this.backup && !this.identityMoved) this.repoDownload = this.#downloadRepo(this.backup);
    await this.step('login-old', () => this.loginOld());
    await this.step('inspect-new', () => this.inspectNew());
    await this.step('create-account', () => this.createAccount());

    if (this.identityMoved) {
      for (const s of ['repo', 'blobs', 'preferences', 'backup', 'verify', 'identity'] as const) {
        this.skip(s, 'already done (the DID already points to the new server)');
      }
    } else {
      // The blob step stops the prefetch, and run() does whatever ends the plan.
      for (let round = 1; ; round++) {
        try {
          await this.step('repo', () => this.copyRepo());
          await this.step('blobs', () => this.copyBlobs());
          await this.step('preferences', () => this.copyPreferences());
          if (this.backup) await this.step('backup', () => this.completeBackup());
          await this.step('verify', () => this.verify());
          break;
        } catch (err) {
          if (!(err instanceof RepoMoved) || round >= DATA_ROUNDS) throw err;
          this.emit({ type: 'warning', step: this.current, message: `${err.message}; copying the changes` });
        }
      }
      await this.step('identity', () => this.updateIdentity());
    }
    await this.step('activate', () => this.activate());

    let status: MigrationStatus = 'done';
    let message = `${this.did} now lives on ${this.to}; the new account is active and the old one is deactivated.`;
    try {
      await this.step('deactivate-old', () => this.deactivateOld());
    } catch (err) {
      const failure = toMigrationError(err, 'deactivate-old');
      status = 'done-old-still-active';
      message =
        `${this.did} now lives on ${this.to} and is active there, but deactivating the old account failed ` +
        `(${failure.message}). The migration is complete; run the same command again to retry only that step.`;
      this.emit({
        type: 'step-failed',
        step: 'deactivate-old',
        message: failure.message,
        next: 'Run the same command again to retry deactivating the old account.',
        code: failure.code,
      });
    }
    this.emit({ type: 'finished', status, message });
    return { status, did: this.did, message };
  }

  // ---- resolve -------------------------------------------------------------------------------

  async resolve(): Promise<string> {
    const from = this.opts.from.trim().replace(/^@/, '');
    let handle: string | undefined;
    if (from.startsWith('did:')) {
      this.did = from;
    } else {
      handle = from.toLowerCase();
      this.did = (await this.#resolveHandle(handle)) ?? '';
      if (!this.did) {
        throw new MigrationError(
          'UnknownHandle',
          `no account found for the handle ${handle}`,
          'Check the spelling of --from, or pass the account DID (did:plc:...) instead. Nothing was changed.',
        );
      }
    }
    await this.#lockAccount();
    let doc: DidDocument;
    try {
      doc = await this.didResolver.resolve(this.did, { noCache: true });
    } catch (err) {
      if (err instanceof IdentityError) {
        const next =
          err.code === 'DidNotFound' || err.code === 'InvalidDid'
            ? 'Check --from (and --plc-url if you use another PLC directory). Nothing was changed.'
            : 'Check your network connection and run again. Nothing was changed.';
        throw new MigrationError(err.code, err.message, next, { cause: err });
      }
      throw err;
    }
    this.doc = doc;
    const docHandle = getHandle(doc);
    if (handle && docHandle?.toLowerCase() !== handle) {
      throw new MigrationError(
        'HandleMismatch',
        `the handle ${handle} points to ${this.did}, but that DID's document names ${docHandle ? `the handle ${docHandle}` : 'no handle'}`,
        "Check --from: give the account's current handle or its DID. Nothing was changed.",
      );
    }

    this.journal = await loadJournal(this.env.storage, this.did);
    const docPds = getPdsEndpoint(doc);
    // The new server may be reached through another URL than the one it publishes (a proxy, a
    // private address): the endpoint it recommended is remembered for this check.
    const published = this.journal?.newPdsEndpoint;
    this.identityMoved =
      docPds !== undefined &&
      (sameServiceUrl(docPds, this.to) || (published !== undefined && sameServiceUrl(docPds, published)));
    const oldPds = this.fromPds ?? (this.identityMoved ? this.journal?.oldPds : docPds);
    if (!oldPds) {
      if (this.identityMoved) {
        throw new MigrationError(
          'AlreadyMigrated',
          `${this.did} already lives on ${this.to}`,
          'Nothing to migrate. To deactivate the old account, run again with --from-pds <old server URL>.',
        );
      }
      throw new MigrationError(
        'NoPds',
        `the DID document of ${this.did} names no PDS`,
        'Pass the old server with --from-pds <url>. Nothing was changed.',
      );
    }
    if (sameServiceUrl(oldPds, this.to)) {
      throw new MigrationError(
        'SameServer',
        `the account already lives on ${this.to}`,
        'Give the new server with --to (it must differ from the old one). Nothing was changed.',
      );
    }
    if (this.journal && !sameServiceUrl(this.journal.newPds, this.to) && !this.journal.identityUpdatedAt) {
      this.emit({
        type: 'warning',
        step: 'resolve',
        message: `an earlier run targeted ${this.journal.newPds}; this run targets ${this.to}`,
      });
    }
    const now = new Date().toISOString();
    this.journal = {
      version: 1,
      failedBlobs: {},
      createdAt: now,
      updatedAt: now,
      ...this.journal,
      did: this.did,
      oldPds,
      newPds: this.to,
    };
    // Blobs that failed in an earlier run get another chance in this one (failedBlobs starts empty).
    await this.saveJournal();
    return `${handle ?? docHandle ?? this.did} is ${this.did}, hosted on ${oldPds}${this.identityMoved ? ' (the DID already points to the new server)' : ''}`;
  }

  /** One run per account and journal: a second one would undo the first one's bookkeeping. */
  async #lockAccount(): Promise<void> {
    const attempt = await this.env.storage.lock?.(journalKey(this.did));
    if (!attempt) return;
    if (!attempt.acquired) {
      throw new MigrationError(
        'MigrationRunning',
        `another migration of ${this.did} is running (${attempt.holder}); wait for it or remove ${attempt.location} if it crashed`,
        'Nothing was changed.',
      );
    }
    this.releaseLock = attempt.release;
  }

  async #resolveHandle(handle: string): Promise<string | undefined> {
    // With --from-pds, the old server knows its own handles: that also covers handles that only
    // exist inside a test network or behind split DNS.
    if (this.fromPds) {
      try {
        const client = new XrpcClient({ service: this.fromPds, fetch: this.fetch });
        const out = await client.query<{ did?: string }>(
          'com.atproto.identity.resolveHandle',
          { handle },
          { timeoutMs: 30_000 },
        );
        if (typeof out?.did === 'string') return out.did;
      } catch {
        // Fall through to DNS and HTTPS.
      }
    }
    if (!this.env.resolveTxt) return undefined;
    const resolver = new HandleResolver({ resolveTxt: this.env.resolveTxt, fetch: this.fetch });
    try {
      return await resolver.resolve(handle);
    } catch (err) {
      throw new MigrationError('InvalidHandle', describeError(err), 'Check --from. Nothing was changed.', {
        cause: err,
      });
    }
  }

  // ---- sessions --------------------------------------------------------------------------

  async loginOld(): Promise<string> {
    const old = this.old!;
    const password = await this.env.credentials.oldPassword();
    // Both passwords are asked first, then both servers check theirs at once.
    this.newPassword = await this.env.credentials.newPassword();
    this.neu = new PdsSession(this.to, this.did, this.fetch);
    this.newLogin = this.#loginNewIfHosted(this.neu, this.newPassword);
    try {
      await this.#login(old, password, 'old');
    } catch (err) {
      if (!this.identityMoved) throw err;
      // After the DID moved, the old server only matters for the final deactivation.
      this.emit({
        type: 'warning',
        step: 'login-old',
        message: `could not sign in to the old server: ${describeError(err)}`,
      });
      return 'skipped: the migration no longer needs the old server except to deactivate it';
    }
    const info = old.info!;
    if (jwtScope(info.accessJwt) !== 'com.atproto.access' && jwtScope(info.accessJwt) !== undefined) {
      throw new MigrationError(
        'AppPassword',
        'that is an app password; moving an account needs the main account password',
        'Set PORTAGE_OLD_PASSWORD to the account password (not an app password). Nothing was changed.',
      );
    }
    return `signed in to ${old.service} as ${info.handle}${info.active === false ? ` (account ${info.status ?? 'deactivated'})` : ''}`;
  }

  /**
   * Signs in to the new server when it may hold the account already (made by an earlier run, or
   * by hand), to resume with it. Most runs start on a server that has never seen the DID: a public
   * getRepoStatus says so, and the sign-in, doomed to fail, is not sent. A failed sign-in is not
   * free: the server spends a password hash on it (or a padded wait), and it counts against the
   * account's sign-in rate limit and may alarm its operator. Resolves to undefined once signed in,
   * NOT_ON_NEW_SERVER, or the sign-in's refusal.
   */
  async #loginNewIfHosted(neu: PdsSession, password: string): Promise<unknown> {
    try {
      await neu.anonymous.query('com.atproto.sync.getRepoStatus', { did: this.did }, { timeoutMs: 30_000 });
    } catch (err) {
      // Any other answer (an older server without the method, a failure) proves nothing: sign in.
      if (err instanceof XrpcClientError && err.error === 'RepoNotFound') return NOT_ON_NEW_SERVER;
    }
    return neu.login(password).then(
      () => undefined,
      (err: unknown) => err,
    );
  }

  async #login(session: PdsSession, password: string, which: 'old' | 'new'): Promise<void> {
    try {
      await session.login(password);
      return;
    } catch (err) {
      if (!(err instanceof XrpcClientError)) throw err;
      if (err.error === 'AuthFactorTokenRequired') {
        const code = await this.env.credentials.authFactorToken();
        if (!code) {
          throw new MigrationError(
            'AuthFactorTokenRequired',
            `the ${which} server emailed a sign-in code to the account's address`,
            'Run the same command again with --auth-factor-token <code from the email>. Nothing was changed.',
          );
        }
        try {
          await session.login(password, code);
          return;
        } catch (again) {
          if (again instanceof XrpcClientError && again.status === 401) {
            throw new MigrationError(
              'InvalidAuthFactorToken',
              `the ${which} server did not accept the sign-in code`,
              'Run again with the newest code from the email (--auth-factor-token). Nothing was changed.',
            );
          }
          throw again;
        }
      }
      if (err.status === 401 && which === 'old') {
        throw new MigrationError(
          'WrongPassword',
          `${session.service} refused the password for ${this.did} (${err.error})`,
          'Check PORTAGE_OLD_PASSWORD: it must be the password of the account on the old server. Nothing was changed.',
        );
      }
      throw err;
    }
  }

  #describeNew(): Promise<NewServerDescription> {
    const client = new XrpcClient({ service: this.to, fetch: this.fetch });
    return withRetry(
      () => client.query<NewServerDescription>('com.atproto.server.describeServer', undefined, { timeoutMs: 30_000 }),
      { attempts: 3 },
    );
  }

  async inspectNew(): Promise<string> {
    let desc: NewServerDescription;
    try {
      desc = await (this.description ?? this.#describeNew());
    } catch (err) {
      throw new MigrationError(
        'NotAPds',
        `${this.to} does not answer as an AT Protocol PDS (describeServer: ${describeError(err)})`,
        'Check --to: it must be the base URL of a PDS, like https://pds.example.com. Nothing was changed.',
        { cause: err },
      );
    }
    if (typeof desc !== 'object' || desc === null || typeof desc.did !== 'string' || !desc.did.startsWith('did:')) {
      throw new MigrationError(
        'NotAPds',
        `${this.to} answered describeServer without a service DID`,
        'Check --to: it must be the base URL of a PDS. Nothing was changed.',
      );
    }
    this.newServiceDid = desc.did;
    this.inviteRequired = desc.inviteCodeRequired === true;
    this.journal!.newServiceDid = desc.did;
    await this.saveJournal();
    return `${this.to} is ${desc.did}${this.inviteRequired ? ' (invite code required)' : ''}`;
  }

  async createAccount(): Promise<string> {
    const neu = this.neu!;
    const password = this.newPassword;
    const refused = await this.newLogin;
    if (refused !== NOT_ON_NEW_SERVER) {
      try {
        if (refused !== undefined) {
          // A sign-in code, like any other answer, is asked for here, not while the old server's
          // sign-in may be asking for its own.
          if (!(refused instanceof XrpcClientError) || refused.error !== 'AuthFactorTokenRequired') throw refused;
          await this.#login(neu, password, 'new');
        }
        return await this.#earlierAccount(neu);
      } catch (err) {
        if (!(err instanceof XrpcClientError) || err.status !== 401) throw err;
      }
    }
    if (this.identityMoved) {
      throw new MigrationError(
        'NewLoginFailed',
        `the DID already points to ${this.to}, but signing in there failed`,
        'Check PORTAGE_NEW_PASSWORD: it must be the password used when the account was created there.',
      );
    }

    const handle = (this.opts.newHandle ?? getHandle(this.doc!) ?? '').toLowerCase();
    if (!handle) {
      throw new MigrationError(
        'HandleRequired',
        'the account has no handle to reuse',
        'Pass --new-handle <handle>. Nothing was changed.',
      );
    }
    if (this.inviteRequired && !this.opts.inviteCode) {
      throw new MigrationError(
        'InviteCodeRequired',
        `${this.to} requires an invite code to create an account`,
        'Ask the operator of the new server for an invite code and run again with --invite-code <code>. Nothing was changed.',
      );
    }
    const email = this.opts.newEmail ?? this.old?.info?.email;
    if (!email) {
      throw new MigrationError(
        'EmailRequired',
        'the old server did not share the account email',
        'Pass --new-email <address>. Nothing was changed.',
      );
    }
    // Who holds the handle on the new server already? Ourselves (from an earlier attempt) means a
    // password mismatch; someone else means the handle must change.
    const holder = await neu.anonymous
      .query<{ did?: string }>('com.atproto.identity.resolveHandle', { handle }, { timeoutMs: 30_000 })
      .then((r) => r?.did)
      .catch(() => undefined);
    if (holder === this.did) {
      // A createAccount sent by a run that was stopped may have landed since the sign-in above.
      if (await signsIn(neu, password)) return this.#earlierAccount(neu);
      throw new MigrationError(
        'NewPasswordMismatch',
        `${this.to} already has this account (from an earlier attempt), but refused the new password`,
        'Set PORTAGE_NEW_PASSWORD to the password of the first attempt. Nothing else was changed.',
      );
    }
    if (holder) {
      throw new MigrationError(
        'HandleTaken',
        `the handle ${handle} belongs to another account on ${this.to}`,
        'Choose a free handle with --new-handle. Nothing was changed.',
      );
    }

    const info = await this.#createAccountCall(neu, { handle, email, password });
    if (info) neu.adopt(info);
    this.journal!.newHandle = handle;
    await this.saveJournal();
    return `created the account as ${handle} (deactivated until the migration finishes)`;
  }

  /** Says that the new server has the account already (signed in to, from an earlier run). */
  async #earlierAccount(neu: PdsSession): Promise<string> {
    const status = await neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    return `the account from an earlier run is there (${status.activated ? 'active' : 'not yet active'})`;
  }

  /**
   * createAccount, retried on network errors and 5xx. The answer may be lost after the server made
   * the account, so before each retry a login tells whether it exists now.
   */
  async #createAccountCall(
    neu: PdsSession,
    input: { handle: string; email: string; password: string },
  ): Promise<SessionInfo | undefined> {
    for (let attempt = 1; ; attempt++) {
      // A fresh service token each attempt: they are short-lived.
      const auth = await this.old!.query<{ token: string }>('com.atproto.server.getServiceAuth', {
        aud: this.newServiceDid,
        lxm: 'com.atproto.server.createAccount',
        exp: Math.floor(Date.now() / 1000) + 300,
      });
      try {
        return await neu.anonymous.procedure<SessionInfo>(
          'com.atproto.server.createAccount',
          { did: this.did, ...input, ...(this.opts.inviteCode ? { inviteCode: this.opts.inviteCode } : {}) },
          { headers: { authorization: `Bearer ${auth.token}` }, timeoutMs: 120_000 },
        );
      } catch (err) {
        if (err instanceof XrpcClientError && err.retryable && attempt < 6) {
          await sleep(err.status === 429 ? (retryDelayFromHeaders(err.headers) ?? 5000) : 300 * 2 ** attempt);
          if (await signsIn(neu, input.password)) return undefined;
          continue;
        }
        // Refused as a duplicate: a run stopped after sending createAccount may have made the
        // account moments ago. Signing in with this password tells whether it is ours.
        if (err instanceof XrpcClientError && (await signsIn(neu, input.password))) return undefined;
        if (err instanceof XrpcClientError) {
          const next =
            err.error === 'InvalidInviteCode'
              ? 'Check --invite-code (it may be used up). Nothing was changed.'
              : err.error === 'InvalidHandle' || err.message.includes('andle')
                ? 'Choose a handle the new server accepts with --new-handle. Nothing was changed.'
                : err.message.includes('mail')
                  ? 'Choose another address with --new-email. Nothing was changed.'
                  : 'Fix the problem named above and run again. Nothing was changed.';
          throw new MigrationError(err.error, `the new server refused to create the account: ${err.message}`, next, {
            cause: err,
          });
        }
        throw err;
      }
    }
  }

  // ---- data ------------------------------------------------------------------------------

  async oldHead(): Promise<LatestCommit> {
    return this.old!.query<LatestCommit>('com.atproto.sync.getLatestCommit', { did: this.did });
  }

  /**
   * The old server's CAR into the backup, before anything else needs the old server: the export
   * is the slowest part of a migration from most servers, and it only needs the DID. The blob
   * prefetch starts when it ends, so the two never compete for the old server.
   */
  async #downloadRepo(backup: BackupSink): Promise<LatestCommit | undefined> {
    const signal = this.#stopDownload.signal;
    try {
      const head = await this.old!.client.query<LatestCommit>(
        'com.atproto.sync.getLatestCommit',
        { did: this.did },
        { signal, timeoutMs: 30_000 },
      );
      if ((await backup.repoCommit()) === head.cid) return head;
      const res = await this.old!.request('com.atproto.sync.getRepo', {
        method: 'GET',
        params: { did: this.did },
        headers: UNCOMPRESSED_REPO,
        signal,
        timeoutMs: 60_000,
      });
      if (!res.body) return undefined;
      await backup.writeRepo(res.body, head.cid);
      return head;
    } catch {
      // A deactivated account's export needs the session, a cut connection a new attempt:
      // copyRepo does both.
      return undefined;
    } finally {
      if (!signal.aborted) this.#startPrefetch();
    }
  }

  /** Starts filling the backup with blobs, once per run (copyBlobs stops it). */
  #startPrefetch(): void {
    if (!this.backup || this.prefetch) return;
    this.prefetch = new BlobPrefetch({
      did: this.did,
      old: this.old!,
      backup: this.backup,
      concurrency: this.opts.concurrency ?? 8,
    });
  }

  async copyRepo(): Promise<string | { summary: string; skipped: true }> {
    // The head the export was taken at will do (the old server is busiest now, serving blobs):
    // verify compares the heads again at the end, and a change since then means another round.
    const exportedHead = await this.repoDownload;
    this.repoDownload = undefined;
    const [head, status, backupCommit] = await Promise.all([
      exportedHead ?? this.oldHead(),
      this.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
      // The export's head is what the download just stored in the backup.
      exportedHead ? exportedHead.cid : this.backup?.repoCommit(),
    ]);
    const backupCurrent = !this.backup || backupCommit === head.cid;
    if (status.repoCommit === head.cid && backupCurrent) {
      return { summary: `already imported (rev ${head.rev})`, skipped: true };
    }
    const needImport = status.repoCommit !== head.cid;
    const progress = new ProgressTracker('repo', 'bytes', (e) => this.emit(e));
    if (needImport && backupCurrent && this.backup?.readRepo) {
      const imported = await this.#importFromBackup(this.backup, progress);
      if (imported) return this.#checkImport(head, progress, 'imported');
    }
    await withRetry(async () => {
      const res = await this.old!.request('com.atproto.sync.getRepo', {
        method: 'GET',
        params: { did: this.did },
        headers: UNCOMPRESSED_REPO,
      });
      if (!res.body) throw new MigrationError('EmptyRepo', 'the old server sent an empty repository', 'Run again.');
      const length = Number(res.headers.get('content-length'));
      if (length > 0) progress.setTotal(length);
      let body = res.body.pipeThrough(countingStream((n) => progress.addBytes(n)));
      let backupWrite: Promise<void> | undefined;
      if (this.backup && !backupCurrent) {
        const [toImport, toBackup] = needImport ? body.tee() : [undefined, body];
        backupWrite = this.backup.writeRepo(toBackup, head.cid);
        // The old server's part is done once the CAR is stored: blobs may come now.
        backupWrite.then(() => this.#startPrefetch()).catch(() => {});
        if (!toImport) return void (await backupWrite);
        body = toImport;
      }
      // The body streams straight through: a large repo never sits whole in memory here.
      const out = await this.neu!.request('com.atproto.repo.importRepo', { method: 'POST', body, encoding: CAR });
      await out.body?.cancel();
      await backupWrite;
    }, this.#importRetry());
    return this.#checkImport(head, progress, needImport ? 'imported' : 'backed up');
  }

  /**
   * importRepo from the CAR the backup holds (it ends at the old head: the caller checked). False
   * when the backup cannot give it back after all; the caller then streams from the old server.
   */
  async #importFromBackup(backup: BackupSink, progress: ProgressTracker): Promise<boolean> {
    this.#startPrefetch();
    return withRetry(async () => {
      const car = await backup.readRepo!();
      if (car === undefined) return false;
      const size = car instanceof Blob ? car.size : undefined;
      if (size !== undefined) progress.setTotal(size);
      const body = car instanceof Blob ? car : car.pipeThrough(countingStream((n) => progress.addBytes(n)));
      const out = await this.neu!.request('com.atproto.repo.importRepo', { method: 'POST', body, encoding: CAR });
      await out.body?.cancel();
      if (size !== undefined) progress.addBytes(size);
      return true;
    }, this.#importRetry());
  }

  /** How the repo step retries an importRepo call: the new server's pace, a warning per failed attempt. */
  #importRetry(): RetryOptions {
    return {
      attempts: 5,
      gate: this.neu!.gate,
      onRetry: (err, attempt) =>
        this.emit({
          type: 'warning',
          step: 'repo',
          message: `attempt ${attempt} failed (${describeError(err)}); retrying`,
        }),
    };
  }

  async #checkImport(head: LatestCommit, progress: ProgressTracker, what: string): Promise<string> {
    progress.flush();
    const after = await this.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    if (after.repoCommit !== head.cid) {
      throw new MigrationError(
        'ImportMismatch',
        `after the import the new server is at commit ${after.repoCommit}, the old one at ${head.cid}`,
        'Run again; if it persists, the new server did not accept the repository as sent.',
      );
    }
    return `${what} ${formatBytes(progress.figures().bytes)} (rev ${head.rev}, ${after.indexedRecords} records)`;
  }

  async copyBlobs(): Promise<string> {
    try {
      return await this.#copyMissingBlobs();
    } finally {
      // The backup step fetches whatever else the backup lacks; the prefetch must not race it
      // (also when the new server needed no blob at all).
      await this.prefetch?.stop();
    }
  }

  async #copyMissingBlobs(): Promise<string> {
    const status = await this.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    const missing = Math.max(0, status.expectedBlobs - status.importedBlobs);
    if (missing === 0) return `all ${status.expectedBlobs} blobs are there`;
    const progress = new ProgressTracker('blobs', 'blobs', (e) => this.emit(e), missing);
    const copied = await copyMissingBlobs({
      did: this.did,
      old: this.old!,
      neu: this.neu!,
      backup: this.backup,
      concurrency: this.opts.concurrency ?? 8,
      progress,
      emit: (e) => this.emit(e),
      failed: this.failedBlobs,
      prefetch: this.prefetch,
    });
    progress.flush();
    this.journal!.failedBlobs = Object.fromEntries(this.failedBlobs);
    await this.saveJournal();
    const failed = this.failedBlobs.size;
    return `copied ${copied} blobs (${formatBytes(progress.figures().bytes)})${failed ? `; ${failed} could not be copied` : ''}`;
  }

  async copyPreferences(): Promise<string> {
    const { preferences } = await this.old!.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences');
    await this.neu!.procedure('app.bsky.actor.putPreferences', { preferences });
    await this.backup?.writePreferences(preferences);
    return `copied ${preferences.length} preferences`;
  }

  /**
   * Makes the backup whole even when earlier runs were killed mid-way or kept no backup (blobs
   * copied but not saved): a prefetch of its own, run to the end, downloads what the backup lacks.
   */
  async completeBackup(): Promise<string> {
    const { listed, fetched, failed } = await new BlobPrefetch({
      did: this.did,
      old: this.old!,
      backup: this.backup!,
      concurrency: this.opts.concurrency ?? 8,
    }).complete();
    for (const [cid, reason] of failed) {
      this.emit({ type: 'warning', step: 'backup', message: `blob ${cid} is not in the backup: ${reason}` });
    }
    return `the backup holds the repo, preferences and ${listed - failed.size} blobs${fetched ? ` (${fetched} fetched now)` : ''}`;
  }

  async verify(): Promise<string> {
    // Every read at once: they are independent, and this step sits between the copy and the
    // identity update, with nothing else running.
    const [head, newStatus, oldStatus, firstMissing, oldPrefs, newPrefs] = await Promise.all([
      this.oldHead(),
      this.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
      this.old!.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
      missingBlobsPage(this.neu!, undefined),
      this.old!.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences'),
      this.neu!.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences'),
    ]);
    if (newStatus.repoCommit !== head.cid) throw new RepoMoved(`the old repository changed (now rev ${head.rev})`);

    const stillMissing: MissingBlob[] = [];
    for (let page = firstMissing; ; page = await missingBlobsPage(this.neu!, page.cursor)) {
      for (const { cid, recordUri } of page.blobs) {
        const known = this.failedBlobs.get(cid);
        const entry: MissingBlob = { cid, reason: known?.reason ?? 'not copied (unknown reason)' };
        if (recordUri ?? known?.record) entry.record = recordUri ?? known?.record;
        stillMissing.push(entry);
        this.failedBlobs.set(cid, entry);
      }
      if (page.blobs.length === 0 || !page.cursor) break;
    }
    if (stillMissing.length > 0) {
      const list = stillMissing.map((b) => `${b.cid}${b.record ? ` (${b.record})` : ''}: ${b.reason}`).join('; ');
      throw new MigrationError(
        'MissingBlobs',
        `${stillMissing.length} blob(s) are missing on the new server: ${list}`,
        'The identity was NOT moved; the old account is untouched and still active. Run again to retry; a blob the old server no longer has must be re-uploaded or its record removed there first.',
      );
    }
    if (newStatus.indexedRecords !== oldStatus.indexedRecords) {
      throw new MigrationError(
        'RecordCountMismatch',
        `the new server holds ${newStatus.indexedRecords} records, the old one ${oldStatus.indexedRecords}`,
        'The identity was NOT moved. Run again; if it persists, report it to the new server operator.',
      );
    }
    if (canonicalJson(oldPrefs.preferences) !== canonicalJson(newPrefs.preferences)) {
      throw new RepoMoved('the preferences changed while they were copied');
    }
    return `same commit (rev ${head.rev}), ${newStatus.indexedRecords} records, all ${newStatus.expectedBlobs} blobs, equal preferences`;
  }

  // ---- identity --------------------------------------------------------------------------

  async updateIdentity(): Promise<string | { summary: string; skipped: true }> {
    const neu = this.neu!;
    const [rec, doc] = await Promise.all([
      neu.query<RecommendedCredentials>('com.atproto.identity.getRecommendedDidCredentials'),
      this.didResolver.resolve(this.did, { noCache: true }),
    ]);
    const newKey = rec.verificationMethods?.atproto;
    const endpoint = rec.services?.atproto_pds?.endpoint ?? this.to;
    this.journal!.newPdsEndpoint = endpoint;
    await this.saveJournal();
    if (sameServiceUrl(getPdsEndpoint(doc), endpoint) && getAtprotoSigningKey(doc) === newKey) {
      return { summary: 'the DID document already names the new server', skipped: true };
    }
    if (this.did.startsWith('did:web:')) return this.#didWebIdentity(doc, rec);

    let rotationKeys = rec.rotationKeys ?? [];
    if (this.env.recoveryKey) {
      let key = await this.env.recoveryKey.load();
      if (!key) {
        key = await generateSigningKey('secp256k1');
        const where = await this.env.recoveryKey.save(key);
        this.emit({
          type: 'notice',
          step: 'identity',
          secret: true,
          message:
            `Your recovery key (shown once; saved to ${where} with owner-only access): ${key.privateKeyHex()}\n` +
            `Its public form is ${key.did()}. Keep it offline: it can take the account back even if the new server disappears.`,
        });
      }
      rotationKeys = [key.did(), ...rotationKeys.filter((k) => k !== key.did())];
      this.journal!.recoveryKeyDid = key.did();
      await this.saveJournal();
    }

    // An operation signed in an earlier run (then killed) is still good if nothing came after it.
    const pending = this.journal!.signedOperation;
    if (pending) {
      const log = await new PlcClient(this.plcUrl, this.fetch).getAuditLog(this.did);
      const last = log.filter((e) => !e.nullified).at(-1);
      if (last && pending.prev === last.cid) {
        await this.#submit(pending);
        return 'submitted the operation signed in the previous run; the DID now points to the new server';
      }
      this.journal!.signedOperation = undefined;
      await this.saveJournal();
    }

    let token = (await this.env.credentials.plcToken(false)) ?? (await this.#emailPlcToken('The old server emailed a'));
    let operation: Record<string, unknown> | undefined;
    let refused = 0;
    while (!operation) {
      try {
        ({ operation } = await this.old!.procedure<{ operation: Record<string, unknown> }>(
          'com.atproto.identity.signPlcOperation',
          {
            token,
            rotationKeys,
            alsoKnownAs: rec.alsoKnownAs,
            verificationMethods: rec.verificationMethods,
            services: rec.services,
          },
        ));
      } catch (err) {
        if (!(err instanceof XrpcClientError && err.status === 400 && /token/i.test(`${err.error} ${err.message}`))) {
          throw err;
        }
        // A caller that gives the same wrong code every time must not have codes emailed forever.
        if (++refused >= MAX_PLC_TOKEN_REFUSALS) {
          throw new MigrationError(
            'PlcTokenRejected',
            `the old server refused ${MAX_PLC_TOKEN_REFUSALS} PLC tokens in a row (${err.error})`,
            'Run the same command again without --plc-token to have a new code emailed, and give it exactly as the email shows it. The identity was NOT changed; all data stays copied.',
            { cause: err },
          );
        }
        // The code expired (they last about 15 minutes), was mistyped, or was used by a run that
        // was stopped while signing. Asking for a new one now saves the user a run.
        token = await this.#emailPlcToken(
          `The old server did not accept the PLC token (${err.error}). The identity was NOT changed; all data stays copied. It emailed a new`,
        );
      }
    }
    this.journal!.signedOperation = operation as Journal['signedOperation'];
    await this.saveJournal();
    await this.#submit(operation);
    return 'the DID now points to the new server';
  }

  /**
   * Has the old server email a PLC token and asks for it. Stops the run (waiting-for-plc-token)
   * when it cannot be asked now: the next run is given it with --plc-token.
   */
  async #emailPlcToken(emailed: string): Promise<string> {
    await this.old!.procedure('com.atproto.identity.requestPlcOperationSignature');
    this.journal!.plcTokenRequestedAt = new Date().toISOString();
    await this.saveJournal();
    this.emit({
      type: 'notice',
      step: 'identity',
      message: `${emailed} confirmation code (PLC token, like ABCDE-12345) to the account's address. It is valid for about 15 minutes.`,
    });
    const token = await this.env.credentials.plcToken(true);
    if (token) return token;
    const message = 'All data is copied and verified; the identity update waits for the emailed code (PLC token).';
    this.emit({
      type: 'waiting-for-plc-token',
      step: 'identity',
      message,
      next: 'Run the same command again with --plc-token <code from the email>.',
    });
    throw new Waiting(message);
  }

  async #submit(operation: Record<string, unknown>): Promise<void> {
    await this.neu!.procedure('com.atproto.identity.submitPlcOperation', { operation });
    const endpoint = this.journal!.newPdsEndpoint ?? this.to;
    await this.#waitForDocument(
      (doc) => sameServiceUrl(getPdsEndpoint(doc), endpoint),
      'the PLC directory does not show the new server yet',
    );
    this.journal!.identityUpdatedAt = new Date().toISOString();
    this.journal!.signedOperation = undefined;
    await this.saveJournal();
  }

  async #waitForDocument(ok: (doc: DidDocument) => boolean, what: string): Promise<DidDocument> {
    for (let attempt = 0; ; attempt++) {
      const doc = await this.didResolver.resolve(this.did, { noCache: true });
      if (ok(doc)) return doc;
      if (attempt >= 20) {
        throw new MigrationError(
          'IdentityNotUpdated',
          what,
          'Run the same command again in a minute; it checks again.',
        );
      }
      await sleep(500);
    }
  }

  /** did:web: we cannot change the document; tell the user exactly what to publish, then check it. */
  #didWebIdentity(doc: DidDocument, rec: RecommendedCredentials): string {
    const newKey = rec.verificationMethods?.atproto;
    const wanted: DidDocument = {
      ...doc,
      verificationMethod: [
        ...(doc.verificationMethod ?? []).filter((m) => !m.id.endsWith('#atproto')),
        ...(newKey
          ? [
              {
                id: `${this.did}#atproto`,
                type: 'Multikey',
                controller: this.did,
                publicKeyMultibase: newKey.replace(/^did:key:/, ''),
              },
            ]
          : []),
      ],
      service: [
        ...(doc.service ?? []).filter((s) => !s.id.endsWith('#atproto_pds')),
        {
          id: '#atproto_pds',
          type: 'AtprotoPersonalDataServer',
          serviceEndpoint: this.journal!.newPdsEndpoint ?? this.to,
        },
      ],
    };
    const host = decodeURIComponent(this.did.slice('did:web:'.length));
    this.emit({
      type: 'notice',
      step: 'identity',
      message: `Publish this document at https://${host}/.well-known/did.json (it changes the #atproto key and the #atproto_pds service):\n${JSON.stringify(wanted, null, 2)}`,
    });
    throw new MigrationError(
      'DidWebNotUpdated',
      `the did:web document at ${host} does not name ${this.to} with the new signing key yet`,
      'Publish the document shown above, then run the same command again; it checks before activating.',
    );
  }

  // ---- finish ----------------------------------------------------------------------------

  async activate(): Promise<string | { summary: string; skipped: true }> {
    // Only a run that found the identity moved can follow one that activated the account (the
    // identity moves first): a fresh run activates without asking.
    if (this.identityMoved || this.journal!.activatedAt) {
      const status = await this.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus');
      if (status.activated) return { summary: 'already active', skipped: true };
    }
    await this.neu!.procedure('com.atproto.server.activateAccount');
    this.journal!.activatedAt = new Date().toISOString();
    await this.saveJournal();
    return `${this.did} is active on ${this.to}`;
  }

  async deactivateOld(): Promise<string | { summary: string; skipped: true }> {
    const old = this.old!;
    if (!old.signedIn) {
      throw new MigrationError('OldLoginFailed', 'could not sign in to the old server', 'Run again to retry.');
    }
    if (this.journal!.oldDeactivatedAt || old.info?.active === false) {
      return { summary: 'already deactivated', skipped: true };
    }
    await old.procedure('com.atproto.server.deactivateAccount', {});
    this.journal!.oldDeactivatedAt = new Date().toISOString();
    await this.saveJournal();
    return `deactivated the account on ${old.service} (kept for 90 days by most servers; delete it there when you are sure)`;
  }

  async saveJournal(): Promise<void> {
    await saveJournal(this.env.storage, this.journal!);
  }
}

/** Whether the account exists on that server with this password (the session is kept if so). */
function signsIn(session: PdsSession, password: string): Promise<boolean> {
  return session.login(password).then(
    () => true,
    () => false,
  );
}

/** Any failure as a MigrationError with a next-step sentence. */
export function toMigrationError(err: unknown, step: StepName): MigrationError {
  if (err instanceof MigrationError) return err;
  if (err instanceof XrpcClientError) {
    const where = `${err.nsid} failed${err.status ? ` with HTTP ${err.status}` : ''}`;
    const next =
      err.status === 0 || err.status >= 500 || err.status === 429
        ? 'A server was unreachable or overloaded; run the same command again to continue where it stopped.'
        : 'Run the same command again to continue; if it fails the same way, the message above names the cause.';
    return new MigrationError(err.error, `${where}: ${err.message}`, next, { cause: err });
  }
  return new MigrationError(
    'Unexpected',
    `${STEP_TITLES[step]}: ${describeError(err)}`,
    'Run the same command again to continue where it stopped.',
    {
      cause: err,
    },
  );
}

/** `value` as a normalized http(s) URL; anything else stops the run, naming the option (`flag`). */
export function checkedServiceUrl(value: string, flag: string): string {
  const normalized = normalizeServiceUrl(value);
  if (normalized !== undefined) return normalized;
  throw new MigrationError(
    'InvalidUrl',
    `${flag} is not an http(s) URL: "${value}"`,
    `Fix ${flag}. Nothing was changed.`,
  );
}

/** The `scope` claim of a JWT, read without verifying (only to give early advice). */
function jwtScope(jwt: string): string | undefined {
  try {
    const payload = jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const json = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), '='))) as {
      scope?: unknown;
    };
    return typeof json.scope === 'string' ? json.scope : undefined;
  } catch {
    return undefined;
  }
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}
