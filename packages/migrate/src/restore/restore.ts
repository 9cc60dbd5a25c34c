/**
 * Restoring an account from a backup when its old server is gone: no step asks the old server
 * anything. The user's recovery key (a rotation key of the DID) does what the old server's
 * signature and emailed token do in a migration.
 *
 * The plan, each step idempotent and asking the servers and the PLC directory where things
 * stand before doing anything, so a run killed at any moment finishes when started again:
 *   check-backup    the backup is whole and of this DID, its commit signed by a key the DID held;
 *                   the recovery key is a rotation key of the DID, and any operation it must
 *                   override is within the PLC's 72 hours. Nothing changes before this passes.
 *   inspect-new     the new server's DID and invite rule.
 *   claim-identity  a PLC operation signed with the recovery key points the DID at the new server
 *                   with a signing key the restore holds (derived, never stored; temporary-key.ts),
 *                   overriding an operation of the old server's key when one moved the DID away.
 *                   did:web: the did.json to publish is printed, and checked on the next run.
 *   create-account  createAccount for the existing DID with a service token that key signs.
 *   repo, blobs,    importRepo from the backup's CAR, every blob listMissingBlobs names from the
 *   preferences     backup, the saved preferences.
 *   verify          the same commit and record count as the backup, no blob missing, equal preferences.
 *   identity        the final operation (recovery key again) names the new server's own keys;
 *                   submitted through the new server, which announces it on its firehose.
 *   activate        the account goes live.
 * The journal is the migration's (same key, same lock): a restore and a migration of one account
 * never run at once.
 */
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import {
  type DidDocument,
  getAtprotoSigningKey,
  getHandle,
  getPdsEndpoint,
  sameServiceUrl,
} from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { type PlcAuditEntry, PlcClient, PlcError } from '@portage/atproto/plc/client';
import { normalizePlcOperation, type PlcOperation, signPlcOperation } from '@portage/atproto/plc/operations';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import type { StoredBlob } from '../backup.ts';
import { AdaptivePool, missingBlobsPage } from '../blobs.ts';
import { checkedServiceUrl, formatBytes, toMigrationError } from '../engine.ts';
import { MigrationError } from '../errors.ts';
import { type EventSink, type MigrationEvent, type MissingBlob, STEP_TITLES, type StepName } from '../events.ts';
import { type Journal, journalKey, loadJournal, saveJournal } from '../journal.ts';
import { ProgressTracker } from '../progress.ts';
import { describeError, withRetry } from '../retry.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { PdsSession, type SessionInfo } from '../session.ts';
import type { NextStep } from '../next-steps.ts';
import type { MigrationStorage } from '../storage.ts';
import { type IdentityPlan, planIdentity } from './identity-plan.ts';
import { type ResignedRepo, resignRepo } from './resign.ts';
import { checkedNewServer, describeNewServer } from '../steps/inspect-new.ts';
import { canonicalJson } from '../steps/verify.ts';
import { mintServiceToken, temporarySigningKey } from './temporary-key.ts';

/** What a restore reads from the backup (DirectoryBackup in Node). */
export interface RestoreSource {
  /** The account the backup is of (its manifest). */
  readonly did: string;
  /** Where it is, for messages. */
  readonly dir: string;
  readRepo(): Promise<Blob | ReadableStream<Uint8Array> | undefined>;
  readBlob(cid: string): Promise<StoredBlob | undefined>;
  blobContentType?(cid: string): Promise<string | undefined>;
  readPreferences(): Promise<unknown[] | undefined>;
}

/** What checking the backup found (verifyBackup's report, the parts the restore uses). */
export interface CheckedBackup {
  repoCommit: string;
  rev: string;
  records: number;
  referencedBlobs: string[];
}

export interface RestoreOptions {
  /** Base URL of the new PDS. */
  to: string;
  plcUrl?: string;
  /** The account the user means; a backup of another is refused. Default: the backup's. */
  did?: string;
  /** Handle on the new server (default: the one the DID document named before the old server went). */
  handle?: string;
  /** Email on the new server: the old server that knew it is gone. Needed to create the account. */
  email?: string;
  inviteCode?: string;
  concurrency?: number;
  /** Where the recovery key came from, for messages. */
  keyFile: string;
}

export interface RestoreEnvironment {
  storage: MigrationStorage;
  backup: RestoreSource;
  recoveryKey: ExportableSigningKey;
  /**
   * Checks the backup against the keys the DID has held (verifyBackup in Node). `orRecordedKey`:
   * the key the backup recorded when it was made counts too (did:web, which keeps no history).
   */
  checkBackup(signingKeys: string[], orRecordedKey: boolean): Promise<CheckedBackup>;
  /** The password for the account on the new server. */
  password(): Promise<string>;
  onEvent: EventSink;
  fetch?: typeof fetch;
  now?: () => Date;
}

export interface RestoreResult {
  status: 'done' | 'failed';
  did?: string;
  message: string;
  /** What to do next when the restore did not finish. */
  next?: NextStep;
  missingBlobs?: MissingBlob[];
}

interface RecommendedCredentials {
  rotationKeys?: string[];
  alsoKnownAs?: string[];
  verificationMethods?: Record<string, string>;
  services?: Record<string, { type: string; endpoint: string }>;
}

const CAR = 'application/vnd.ipld.car';

export async function restore(options: RestoreOptions, env: RestoreEnvironment): Promise<RestoreResult> {
  return new Restore(options, env).run();
}

class Restore {
  readonly opts: RestoreOptions;
  readonly env: RestoreEnvironment;
  readonly to: string;
  readonly plcUrl: string;
  readonly fetch: typeof fetch;
  readonly didResolver: DidResolver;
  readonly plc: PlcClient;
  readonly did: string;
  readonly isPlc: boolean;
  current: StepName = 'check-backup';
  journal: Journal | undefined;
  releaseLock: (() => Promise<void>) | undefined;
  backup: CheckedBackup | undefined;
  plan: IdentityPlan | undefined;
  /** The document as it stood when this run started. */
  doc: DidDocument | undefined;
  temporaryKey: ExportableSigningKey | undefined;
  newServiceDid = '';
  inviteRequired = false;
  neu: PdsSession;
  /** The DID already names the new server's own key: everything before the identity step is done. */
  identityMoved = false;
  failedBlobs = new Map<string, MissingBlob>();
  /** did:web: this run's commit over the backup's tree, signed with the restore's key. */
  resigned: ResignedRepo | undefined;

  constructor(opts: RestoreOptions, env: RestoreEnvironment) {
    this.opts = opts;
    this.env = env;
    this.to = checkedServiceUrl(opts.to, 'to');
    this.plcUrl = checkedServiceUrl(opts.plcUrl ?? 'https://plc.directory', 'plcUrl');
    this.fetch = env.fetch ?? globalThis.fetch.bind(globalThis);
    this.didResolver = new DidResolver({ plcUrl: this.plcUrl, fetch: this.fetch });
    this.plc = new PlcClient(this.plcUrl, this.fetch);
    this.did = env.backup.did;
    this.isPlc = this.did.startsWith('did:plc:');
    this.neu = new PdsSession(this.to, this.did, this.fetch);
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

  async run(): Promise<RestoreResult> {
    try {
      await this.step('check-backup', () => this.checkBackup());
      await this.step('inspect-new', () => this.inspectNew());
      if (this.identityMoved) this.skip('claim-identity', 'already done (the DID names the new server)');
      else await this.step('claim-identity', () => this.claimIdentity());
      await this.step('create-account', () => this.createAccount());
      if (this.identityMoved) {
        for (const s of ['repo', 'blobs', 'preferences', 'verify', 'identity'] as const) {
          this.skip(s, 'already done (the DID already names the new server)');
        }
      } else {
        await this.step('repo', () => this.importRepo());
        await this.step('blobs', () => this.uploadBlobs());
        await this.step('preferences', () => this.restorePreferences());
        await this.step('verify', () => this.verify());
        await this.step('identity', () => this.updateIdentity());
      }
      await this.step('activate', () => this.activate());
      const message = `${this.did} is restored from ${this.env.backup.dir} and now lives on ${this.to}, active.`;
      this.emit({ type: 'finished', status: 'done', message });
      return { status: 'done', did: this.did, message };
    } catch (err) {
      const failure = toMigrationError(err, this.current);
      const missing = failure.code === 'MissingBlobs' ? [...this.failedBlobs.values()] : undefined;
      this.emit({
        type: 'step-failed',
        step: this.current,
        message: failure.message,
        next: failure.next,
        nextStep: failure.nextStep,
        code: failure.code,
      });
      const message = `${failure.message}. ${failure.next}`;
      const next = failure.nextStep;
      const extra = missing ? { missingBlobs: missing } : {};
      this.emit({ type: 'finished', status: 'failed', message, nextStep: next, ...extra });
      return { status: 'failed', did: this.did, message, next, ...extra };
    } finally {
      await this.releaseLock?.().catch(() => {});
    }
  }

  // ---- check-backup ----------------------------------------------------------------------

  async checkBackup(): Promise<string> {
    if (this.opts.did !== undefined && this.opts.did !== this.did) {
      throw new MigrationError(
        'BackupOfAnotherAccount',
        `the backup in ${this.env.backup.dir} is of ${this.did}, not of ${this.opts.did}`,
        { kind: 'need-input', field: 'backup', reason: 'mismatch', nothingChanged: true },
      );
    }
    if (!this.isPlc && !this.did.startsWith('did:web:')) {
      throw new MigrationError(
        'UnsupportedDid',
        `${this.did} is neither a did:plc nor a did:web`,
        'Nothing was changed.',
      );
    }
    const attempt = await this.env.storage.lock?.(journalKey(this.did));
    if (attempt && !attempt.acquired) {
      throw new MigrationError(
        'MigrationRunning',
        `another migration or restore of ${this.did} is running (${attempt.holder}); wait for it or remove ${attempt.location} if it crashed`,
        'Nothing was changed.',
      );
    }
    if (attempt?.acquired) this.releaseLock = attempt.release;

    this.temporaryKey = await temporarySigningKey(this.env.recoveryKey, this.did);
    const [doc, log] = await Promise.all([
      this.#resolve(),
      this.isPlc ? this.#auditLog() : Promise.resolve([] as PlcAuditEntry[]),
    ]);
    this.doc = doc;
    const key = this.env.recoveryKey.did();
    if (this.isPlc) {
      this.plan = await planIdentity({
        did: this.did,
        log,
        key,
        keyFile: this.opts.keyFile,
        now: (this.env.now ?? (() => new Date()))(),
      });
    }
    this.journal = await loadJournal(this.env.storage, this.did);
    const published = this.journal?.newPdsEndpoint;
    const docPds = doc ? getPdsEndpoint(doc) : undefined;
    const docKey = doc ? getAtprotoSigningKey(doc) : undefined;
    const namesNewServer =
      docPds !== undefined &&
      (sameServiceUrl(docPds, this.to) || (published !== undefined && sameServiceUrl(docPds, published)));
    this.identityMoved = namesNewServer && docKey !== undefined && docKey !== this.temporaryKey.did();

    // The keys the backed-up commit may be signed with: every #atproto key of the DID's log, except
    // those only an operation this restore overrides named.
    const overridden = new Set(this.plan?.overrides.map((e) => e.cid));
    const keys = new Set<string>();
    for (const entry of log) {
      if (entry.nullified || overridden.has(entry.cid) || entry.operation.type === 'plc_tombstone') continue;
      const atproto = normalizePlcOperation(entry.operation).verificationMethods.atproto;
      if (atproto) keys.add(atproto);
    }
    if (!this.isPlc && docKey) keys.add(docKey);
    this.backup = await this.env.checkBackup([...keys], !this.isPlc);

    const now = new Date().toISOString();
    this.journal = {
      version: 1,
      failedBlobs: {},
      createdAt: now,
      updatedAt: now,
      ...this.journal,
      did: this.did,
      // The server the DID named when the restore began: the one that is gone.
      oldPds: this.journal?.oldPds ?? (namesNewServer ? '' : (docPds ?? '')),
      newPds: this.to,
      recoveryKeyDid: key,
    };
    await saveJournal(this.env.storage, this.journal);
    const overrides = this.plan?.overrides.length ?? 0;
    return (
      `the backup of ${this.did} is whole (rev ${this.backup.rev}, ${this.backup.records} records, ` +
      `${this.backup.referencedBlobs.length} blobs)` +
      (this.isPlc ? `; the recovery key is a rotation key of the DID` : '') +
      (overrides ? `; ${overrides} operation(s) made after it will be overridden` : '')
    );
  }

  async #resolve(): Promise<DidDocument | undefined> {
    try {
      return await this.didResolver.resolve(this.did, { noCache: true });
    } catch (err) {
      // A did:plc whose latest operation was a tombstone has no document; the log still decides.
      if (this.isPlc) return undefined;
      throw new MigrationError(
        'DidNotResolved',
        describeError(err),
        'Check the network and run again. Nothing was changed.',
        {
          cause: err,
        },
      );
    }
  }

  async #auditLog(): Promise<PlcAuditEntry[]> {
    try {
      return await this.plc.getAuditLog(this.did);
    } catch (err) {
      throw new MigrationError(
        'DidNotResolved',
        `the PLC directory at ${this.plcUrl} did not give the log of ${this.did}: ${describeError(err)}`,
        { kind: 'need-input', field: 'plcUrl', reason: 'unreachable', nothingChanged: true },
        { cause: err },
      );
    }
  }

  // ---- new server ----------------------------------------------------------------------

  async inspectNew(): Promise<string> {
    const desc = await checkedNewServer(this.to, describeNewServer(this));
    this.newServiceDid = desc.did;
    this.inviteRequired = desc.inviteCodeRequired === true;
    this.journal!.newServiceDid = desc.did;
    await saveJournal(this.env.storage, this.journal!);
    return `${this.to} is ${desc.did}${this.inviteRequired ? ' (invite code required)' : ''}`;
  }

  // ---- claim-identity --------------------------------------------------------------------

  async claimIdentity(): Promise<string | { summary: string; skipped: true }> {
    const temporary = this.temporaryKey!;
    const doc = this.doc;
    if (doc && sameServiceUrl(getPdsEndpoint(doc), this.to) && getAtprotoSigningKey(doc) === temporary.did()) {
      return { summary: 'the DID already points to the new server (from an earlier run)', skipped: true };
    }
    if (!this.isPlc) return this.#didWebDocument(temporary.did(), this.to, 'a signing key the restore holds');

    const plan = this.plan!;
    const base = plan.prev.operation;
    const first = plan.overrides[0];
    if (first) {
      const moved =
        first.operation.type === 'plc_tombstone' ? 'deactivated it' : `pointed it to ${describeState(first)}`;
      this.emit({
        type: 'notice',
        step: 'claim-identity',
        message:
          `On ${first.createdAt} the rotation key ${plan.overriddenSigner ?? '(unknown)'} ${moved} (operation ${first.cid}). ` +
          `Your recovery key ranks above it, so this restore overrides that operation${plan.overrides.length > 1 ? ` and the ${plan.overrides.length - 1} after it` : ''}; ` +
          'the PLC directory allows it within 72 hours of it.',
      });
    }
    const operation = await signPlcOperation(
      {
        type: 'plc_operation',
        prev: plan.prev.cid,
        // The old server's keys are dropped: it is gone, or it is the one that moved the DID away.
        rotationKeys: [this.env.recoveryKey.did()],
        verificationMethods: { ...base.verificationMethods, atproto: temporary.did() },
        alsoKnownAs: base.alsoKnownAs,
        services: { ...base.services, atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint: this.to } },
      },
      this.env.recoveryKey,
    );
    try {
      await withRetry(() => this.plc.submitOperation(this.did, operation), { attempts: 4 });
    } catch (err) {
      if (err instanceof PlcError && /72 hours|LateRecovery/.test(err.message)) {
        throw new MigrationError(
          'RecoveryWindowPassed',
          `the PLC directory refused to override the operation that moved ${this.did} away from your key: ${err.message}`,
          'This key can no longer take the DID back. Nothing was changed.',
          { cause: err },
        );
      }
      if (err instanceof PlcError && err.code === 'Rejected') {
        throw new MigrationError(
          'PlcRejected',
          `the PLC directory refused the operation: ${err.message}`,
          'Run the same command again: it reads the log anew. Nothing was changed.',
          { cause: err },
        );
      }
      throw err;
    }
    this.doc = await this.#waitForDocument(
      (d) => getAtprotoSigningKey(d) === temporary.did(),
      'the PLC directory does not show the restore operation yet',
    );
    return first
      ? `overrode ${plan.overrides.length} operation(s) and pointed ${this.did} at ${this.to}`
      : `pointed ${this.did} at ${this.to}`;
  }

  // ---- create-account --------------------------------------------------------------------

  async createAccount(): Promise<string> {
    const password = await this.env.password();
    const hosted = await this.neu.anonymous
      .query('com.atproto.sync.getRepoStatus', { did: this.did }, { timeoutMs: 30_000 })
      .then(
        () => true,
        (err: unknown) => !(err instanceof XrpcClientError && err.error === 'RepoNotFound'),
      );
    if (hosted) {
      if (await signsIn(this.neu, password)) {
        const status = await this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
        return `the account from an earlier run is there (${status.activated ? 'active' : 'not yet active'})`;
      }
      throw new MigrationError(
        'NewPasswordMismatch',
        `${this.to} already holds ${this.did}, but refused the password`,
        { kind: 'need-input', field: 'newPassword', reason: 'mismatch' },
      );
    }
    if (this.identityMoved) {
      throw new MigrationError(
        'AccountMissing',
        `the DID names ${this.to}, but that server does not hold the account`,
        'Ask the operator of the new server; the backup is untouched.',
      );
    }
    const handle = (this.opts.handle ?? this.#formerHandle() ?? '').toLowerCase();
    if (!handle) {
      throw new MigrationError('HandleRequired', 'the DID document names no handle to reuse', {
        kind: 'need-input',
        field: 'handle',
        reason: 'missing',
      });
    }
    if (!this.opts.email) {
      throw new MigrationError(
        'EmailRequired',
        'the new server needs an email address for the account, and the old server that knew it is gone',
        { kind: 'need-input', field: 'email', reason: 'missing' },
      );
    }
    if (this.inviteRequired && !this.opts.inviteCode) {
      throw new MigrationError('InviteCodeRequired', `${this.to} requires an invite code to create an account`, {
        kind: 'need-input',
        field: 'inviteCode',
        reason: 'missing',
      });
    }
    const input = {
      did: this.did,
      handle,
      email: this.opts.email,
      password,
      ...(this.opts.inviteCode ? { inviteCode: this.opts.inviteCode } : {}),
    };
    for (let attempt = 1; ; attempt++) {
      const token = await mintServiceToken({
        key: this.temporaryKey!,
        iss: this.did,
        aud: this.newServiceDid,
        lxm: 'com.atproto.server.createAccount',
        ttlSeconds: 300,
      });
      try {
        const info = await this.neu.anonymous.procedure<SessionInfo>('com.atproto.server.createAccount', input, {
          headers: { authorization: `Bearer ${token}` },
          timeoutMs: 120_000,
        });
        this.neu.adopt(info);
        break;
      } catch (err) {
        // The answer may be lost after the server made the account: signing in tells.
        if (err instanceof XrpcClientError && (await signsIn(this.neu, password))) break;
        if (err instanceof XrpcClientError && err.retryable && attempt < 5) continue;
        if (err instanceof XrpcClientError) {
          const field =
            err.error === 'InvalidInviteCode'
              ? 'inviteCode'
              : /handle/i.test(err.message)
                ? 'handle'
                : /mail/i.test(err.message)
                  ? 'email'
                  : undefined;
          throw new MigrationError(
            err.error,
            `the new server refused to create the account: ${err.message} (the DID points to the new server, which can be given the account on the next run)`,
            field ? { kind: 'need-input', field, reason: 'invalid' } : 'Fix the problem named above and run again.',
            { cause: err },
          );
        }
        throw err;
      }
    }
    this.journal!.newHandle = handle;
    await saveJournal(this.env.storage, this.journal!);
    return `created the account as ${handle} (deactivated until the restore finishes)`;
  }

  /** The handle the DID document named before the old server went (or the override). */
  #formerHandle(): string | undefined {
    const aka = this.plan?.prev.operation.alsoKnownAs ?? this.doc?.alsoKnownAs ?? [];
    const first = aka.find((a) => a.startsWith('at://'));
    return first?.slice('at://'.length) ?? (this.doc ? getHandle(this.doc) : undefined);
  }

  // ---- data ------------------------------------------------------------------------------

  /**
   * The commit the new server must end at, and the CAR that gets it there: the backup's own, or
   * for a did:web the same tree signed again with the restore's key (resign.ts).
   */
  async #repoToImport(): Promise<{ commit: string; rev: string; body(): Promise<Blob | ReadableStream<Uint8Array>> }> {
    const readRepo = async () => {
      const car = await this.env.backup.readRepo();
      if (car === undefined)
        throw new MigrationError('BackupDamaged', 'repo.car went missing from the backup', 'Run again.');
      return car;
    };
    if (this.isPlc) return { commit: this.backup!.repoCommit, rev: this.backup!.rev, body: readRepo };
    this.resigned ??= await resignRepo(readRepo, this.did, this.temporaryKey!);
    const resigned = this.resigned;
    return { commit: resigned.commit, rev: resigned.rev, body: async () => resigned.body() };
  }

  async importRepo(): Promise<string | { summary: string; skipped: true }> {
    const repo = await this.#repoToImport();
    const status = await this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    // A did:web's commit is signed anew on every run; its tree and rev tell it was imported.
    if (status.repoCommit === repo.commit || (!this.isPlc && status.repoRev === repo.rev)) {
      return { summary: `already imported (rev ${repo.rev})`, skipped: true };
    }
    const progress = new ProgressTracker('repo', 'bytes', (e) => this.emit(e));
    let size = 0;
    await withRetry(
      async () => {
        const car = await repo.body();
        if (car instanceof Blob) {
          size = car.size;
          progress.setTotal(size);
        }
        const res = await this.neu.request('com.atproto.repo.importRepo', { method: 'POST', body: car, encoding: CAR });
        await res.body?.cancel();
      },
      { attempts: 5, gate: this.neu.gate },
    );
    progress.addBytes(size);
    progress.flush();
    const after = await this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    if (after.repoCommit !== repo.commit) {
      throw new MigrationError(
        'ImportMismatch',
        `after the import the new server is at commit ${after.repoCommit}, the backup at ${repo.commit}`,
        'Run again; if it persists, the new server did not accept the repository as sent.',
      );
    }
    return `imported ${size ? `${formatBytes(size)} ` : ''}(rev ${repo.rev}, ${after.indexedRecords} records)`;
  }

  async uploadBlobs(): Promise<string> {
    const status = await this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    const missing = Math.max(0, status.expectedBlobs - status.importedBlobs);
    if (missing === 0) return `all ${status.expectedBlobs} blobs are there`;
    const progress = new ProgressTracker('blobs', 'blobs', (e) => this.emit(e), missing);
    const pool = new AdaptivePool(this.opts.concurrency ?? 8);
    let uploaded = 0;
    let cursor: string | undefined;
    for (;;) {
      const page = await missingBlobsPage(this.neu, cursor);
      for (const { cid, recordUri } of page.blobs) {
        if (this.failedBlobs.has(cid)) continue;
        await pool.add(async () => {
          try {
            const bytes = await this.#uploadBlob(cid);
            progress.addBytes(bytes);
            progress.addDone();
            uploaded++;
            pool.succeeded();
          } catch (err) {
            const entry: MissingBlob = { cid, reason: describeError(err), ...(recordUri ? { record: recordUri } : {}) };
            this.failedBlobs.set(cid, entry);
            this.emit({
              type: 'warning',
              step: 'blobs',
              message: `blob ${cid} could not be uploaded: ${entry.reason}`,
            });
          }
        });
      }
      if (!page.cursor || page.blobs.length === 0) break;
      cursor = page.cursor;
    }
    await pool.drain();
    progress.flush();
    return `uploaded ${uploaded} blobs from the backup (${formatBytes(progress.figures().bytes)})`;
  }

  async #uploadBlob(cid: string): Promise<number> {
    const contentType = (await this.env.backup.blobContentType?.(cid)) ?? 'application/octet-stream';
    return withRetry(
      async () => {
        const stored = await this.env.backup.readBlob(cid);
        const body = await stored?.read();
        if (!stored || body === undefined)
          throw new MigrationError('BlobNotInBackup', `blob ${cid} is not in the backup`, '');
        const res = await this.neu.request('com.atproto.repo.uploadBlob', {
          method: 'POST',
          body,
          encoding: contentType,
        });
        this.neu.gate.observe(res.headers);
        const out = (await res.json()) as { blob?: { ref?: { $link?: string } } };
        if (out.blob?.ref?.$link !== cid) {
          throw new MigrationError(
            'BlobMismatch',
            `the new server stored blob ${cid} as ${String(out.blob?.ref?.$link)}`,
            '',
          );
        }
        return stored.size;
      },
      { attempts: 6, gate: this.neu.gate },
    );
  }

  async restorePreferences(): Promise<string | { summary: string; skipped: true }> {
    const preferences = await this.env.backup.readPreferences();
    if (preferences === undefined) {
      this.emit({
        type: 'warning',
        step: 'preferences',
        message: 'the backup holds no preferences (it was made without the password)',
      });
      return { summary: 'none in the backup', skipped: true };
    }
    await this.neu.procedure('app.bsky.actor.putPreferences', { preferences });
    return `restored ${preferences.length} preferences`;
  }

  async verify(): Promise<string> {
    const backup = this.backup!;
    const [repo, status, firstMissing, prefs, saved] = await Promise.all([
      this.#repoToImport(),
      this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
      missingBlobsPage(this.neu, undefined),
      this.neu.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences'),
      this.env.backup.readPreferences(),
    ]);
    if (status.repoCommit !== repo.commit && (this.isPlc || status.repoRev !== repo.rev)) {
      throw new MigrationError(
        'ImportMismatch',
        `the new server is at commit ${status.repoCommit}, the backup at ${repo.commit}`,
        'Run the same command again; the identity was not moved yet.',
      );
    }
    const stillMissing: MissingBlob[] = [];
    for (let page = firstMissing; ; page = await missingBlobsPage(this.neu, page.cursor)) {
      for (const { cid, recordUri } of page.blobs) {
        const known = this.failedBlobs.get(cid);
        stillMissing.push({
          cid,
          reason: known?.reason ?? 'not uploaded',
          ...(recordUri ? { record: recordUri } : {}),
        });
      }
      if (page.blobs.length === 0 || !page.cursor) break;
    }
    if (stillMissing.length > 0) {
      for (const b of stillMissing) this.failedBlobs.set(b.cid, b);
      throw new MigrationError(
        'MissingBlobs',
        `${stillMissing.length} blob(s) are missing on the new server: ${stillMissing.map((b) => `${b.cid}: ${b.reason}`).join('; ')}`,
        'The identity was not moved to the new server key yet. Run the same command again to retry.',
      );
    }
    if (status.indexedRecords !== backup.records) {
      throw new MigrationError(
        'RecordCountMismatch',
        `the new server holds ${status.indexedRecords} records, the backup ${backup.records}`,
        { kind: 'run-again', reason: 'mismatch' },
      );
    }
    if (saved !== undefined && canonicalJson(saved) !== canonicalJson(prefs.preferences)) {
      throw new MigrationError(
        'PreferencesMismatch',
        'the new server holds other preferences than the backup',
        'Run the same command again.',
      );
    }
    return `same commit (rev ${backup.rev}), ${status.indexedRecords} records, all ${status.expectedBlobs} blobs${saved ? ', equal preferences' : ''}`;
  }

  // ---- identity --------------------------------------------------------------------------

  async updateIdentity(): Promise<string | { summary: string; skipped: true }> {
    const rec = await this.neu.query<RecommendedCredentials>('com.atproto.identity.getRecommendedDidCredentials');
    const endpoint = rec.services?.atproto_pds?.endpoint ?? this.to;
    const newKey = rec.verificationMethods?.atproto;
    this.journal!.newPdsEndpoint = endpoint;
    await saveJournal(this.env.storage, this.journal!);
    const doc = await this.didResolver.resolve(this.did, { noCache: true });
    if (sameServiceUrl(getPdsEndpoint(doc), endpoint) && getAtprotoSigningKey(doc) === newKey) {
      return { summary: 'the DID document already names the new server', skipped: true };
    }
    if (!this.isPlc) return this.#didWebDocument(newKey, endpoint, "the new server's signing key");

    const log = await this.#auditLog();
    const head = log.filter((e) => !e.nullified).at(-1);
    if (!head || head.operation.type === 'plc_tombstone') {
      throw new MigrationError(
        'DidNotFound',
        `the PLC log of ${this.did} ends without an operation to follow`,
        'Run again.',
      );
    }
    const key = this.env.recoveryKey.did();
    const operation = await signPlcOperation(
      {
        type: 'plc_operation',
        prev: head.cid,
        // The recovery key stays first: it can take the account back again, from this server too.
        rotationKeys: [key, ...(rec.rotationKeys ?? []).filter((k) => k !== key)],
        verificationMethods: rec.verificationMethods ?? {},
        alsoKnownAs: rec.alsoKnownAs ?? [],
        services: rec.services ?? {},
      },
      this.env.recoveryKey,
    );
    this.journal!.signedOperation = operation as unknown as Journal['signedOperation'];
    await saveJournal(this.env.storage, this.journal!);
    // Through the new server: it checks the operation keeps the account reachable there, sends it
    // to the directory and announces the identity on its firehose.
    await this.neu.procedure('com.atproto.identity.submitPlcOperation', { operation });
    await this.#waitForDocument(
      (d) => getAtprotoSigningKey(d) === newKey,
      'the PLC directory does not show the new server yet',
    );
    this.journal!.identityUpdatedAt = new Date().toISOString();
    this.journal!.signedOperation = undefined;
    await saveJournal(this.env.storage, this.journal!);
    return `the DID now names ${endpoint} and its signing key`;
  }

  async activate(): Promise<string | { summary: string; skipped: true }> {
    const status = await this.neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    if (status.activated) return { summary: 'already active', skipped: true };
    await this.neu.procedure('com.atproto.server.activateAccount');
    this.journal!.activatedAt = new Date().toISOString();
    await saveJournal(this.env.storage, this.journal!);
    return `${this.did} is active on ${this.to}`;
  }

  // ---- helpers ---------------------------------------------------------------------------

  async #waitForDocument(ok: (doc: DidDocument) => boolean, what: string): Promise<DidDocument> {
    for (let attempt = 0; ; attempt++) {
      const doc = await this.didResolver.resolve(this.did, { noCache: true });
      if (ok(doc)) return doc;
      if (attempt >= 20)
        throw new MigrationError('IdentityNotUpdated', what, { kind: 'run-again', reason: 'identity-pending' });
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * did:web: only its owner can change the document. The restore prints the did.json to publish
   * (naming `key` and `endpoint`) and stops; the next run checks it before going on.
   */
  #didWebDocument(key: string | undefined, endpoint: string, whose: string): never {
    const doc = this.doc ?? { id: this.did };
    const wanted: DidDocument = {
      ...doc,
      verificationMethod: [
        ...(doc.verificationMethod ?? []).filter((m) => !m.id.endsWith('#atproto')),
        ...(key
          ? [
              {
                id: `${this.did}#atproto`,
                type: 'Multikey',
                controller: this.did,
                publicKeyMultibase: key.replace(/^did:key:/, ''),
              },
            ]
          : []),
      ],
      service: [
        ...(doc.service ?? []).filter((s) => !s.id.endsWith('#atproto_pds')),
        { id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: endpoint },
      ],
    };
    const host = decodeURIComponent(this.did.slice('did:web:'.length));
    this.emit({
      type: 'notice',
      step: this.current,
      message: `Publish this document at https://${host}/.well-known/did.json (its #atproto key is ${whose}; its #atproto_pds service is ${endpoint}):\n${JSON.stringify(wanted, null, 2)}`,
    });
    throw new MigrationError(
      'DidWebNotUpdated',
      `the did:web document at ${host} does not name ${endpoint} with ${whose} yet`,
      { kind: 'publish-did-document', host },
    );
  }
}

/** Where an operation pointed the DID, in a few words. */
function describeState(entry: PlcAuditEntry): string {
  if (entry.operation.type === 'plc_tombstone') return 'nowhere (tombstone)';
  const op = normalizePlcOperation(entry.operation as PlcOperation);
  return op.services.atproto_pds?.endpoint ?? 'no server';
}

function signsIn(session: PdsSession, password: string): Promise<boolean> {
  return session.login(password).then(
    () => true,
    () => false,
  );
}
