/**
 * The one event stream a migration emits. The CLI renders it as progress bars or JSON lines and
 * the browser wizard renders the same events, so everything a user needs to see or do next is
 * in here, never only in a log.
 */
import type { NextStep } from './next-steps.ts';

export type StepName =
  | 'check-backup'
  | 'claim-identity'
  | 'resolve'
  | 'login-old'
  | 'inspect-new'
  | 'checks'
  | 'create-account'
  | 'repo'
  | 'blobs'
  | 'preferences'
  | 'backup'
  | 'verify'
  | 'identity'
  | 'activate'
  | 'deactivate-old';

export const STEP_TITLES: Record<StepName, string> = {
  'check-backup': 'Check the backup and the recovery key',
  'claim-identity': 'Take the identity (DID) back with the recovery key',
  resolve: 'Find the account',
  'login-old': 'Sign in to the old server',
  'inspect-new': 'Check the new server',
  checks: 'Check everything before changing anything',
  'create-account': 'Create the account on the new server',
  repo: 'Copy the repository',
  blobs: 'Copy the blobs (images, videos)',
  preferences: 'Copy the preferences',
  backup: 'Complete the local backup',
  verify: 'Verify everything arrived',
  identity: 'Point the identity (DID) at the new server',
  activate: 'Activate the new account',
  'deactivate-old': 'Deactivate the old account',
};

export interface ProgressFigures {
  /** Units done so far (bytes for the repo; blobs for the blob step). */
  done: number;
  /** Total units when known. */
  total?: number;
  unit: 'bytes' | 'blobs';
  /** Bytes moved so far (also for the blob step). */
  bytes: number;
  /** Bytes per second, smoothed. */
  bytesPerSecond: number;
  /** Seconds left, when a total is known and the rate is meaningful. */
  etaSeconds?: number;
}

export interface MissingBlob {
  cid: string;
  /** The record that references it (at:// URI), when the server said. */
  record?: string;
  reason: string;
}

export type MigrationEvent =
  | { type: 'step-started'; step: StepName; title: string }
  | ({ type: 'step-progress'; step: StepName } & ProgressFigures)
  | { type: 'step-done'; step: StepName; summary: string; skipped?: boolean }
  | {
      type: 'step-failed';
      step: StepName;
      message: string;
      /** What to do next, in plain words that name no flag or field. */
      next: string;
      /** What to do next, as data: each front end words it in its own terms. */
      nextStep: NextStep;
      /** The failure's stable code (MigrationError's: WrongPassword, HandleTaken, InviteCodeRequired, ...). */
      code?: string;
    }
  | { type: 'warning'; step: StepName; message: string }
  /** Something the user must read and keep (a recovery key) or do (publish a did.json). */
  | { type: 'notice'; step: StepName; message: string; secret?: boolean }
  | { type: 'waiting-for-plc-token'; step: 'identity'; message: string; next: string; nextStep: NextStep }
  | {
      type: 'finished';
      status: MigrationStatus;
      message: string;
      /** What to do next when the move did not finish. */
      nextStep?: NextStep;
      missingBlobs?: MissingBlob[];
    };

export type MigrationStatus =
  /** Everything done, the old account deactivated. */
  | 'done'
  /** Migrated and verified, but deactivating the old account failed: run again to retry that alone. */
  | 'done-old-still-active'
  /** Waiting for the emailed PLC token (run again with it). */
  | 'waiting-for-plc-token'
  /** A daily limit of a server is spent: run again after the time in the next step (resume-after). */
  | 'resume-later'
  /** Stopped; state saved; safe to run again. */
  | 'failed';

export type EventSink = (event: MigrationEvent) => void;
