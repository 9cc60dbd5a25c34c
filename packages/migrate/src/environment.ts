/**
 * What a caller gives the engine: the options of one move, and the environment it runs in
 * (storage, credentials, events, and the platform's fetch, DNS, backup and key file).
 */
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import type { BackupSink } from './backup.ts';
import type { EventSink, MigrationStatus, MissingBlob } from './events.ts';
import type { NextStep } from './next-steps.ts';
import type { DelegatedSession } from './session.ts';
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
  /**
   * The longest rate-limit pause a run waits out (default 5 minutes). A server whose budget
   * refills later (a daily upload limit) ends the run with status resume-later and the time to go on.
   */
  longestWaitMs?: number;
}

export interface MigrationCredentials {
  /**
   * The old server signed in without the password (an OAuth session the caller holds, for the
   * account's DID); asked first. Undefined, or absent: the password is asked instead.
   */
  oldSession?(): Promise<DelegatedSession | undefined>;
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
  /** What the user does now, when the move did not finish. */
  next?: NextStep;
  missingBlobs?: MissingBlob[];
}
