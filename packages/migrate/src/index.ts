/**
 * @portage/migrate: moving an account between AT Protocol servers, resumable and verified.
 * This entry point is browser-safe; Node-only helpers (directory storage and backup, recovery key
 * file, fetch without client timeouts, memory guard, terminal rendering) are the `*.node.ts`
 * modules, imported by path (e.g. `@portage/migrate/storage.node`).
 */
export type { BackupSink, StoredBlob } from './backup.ts';
export { type BackupEnvironment, type BackupOptions, type BackupResult, backupAccount } from './backup-run.ts';
export {
  type MigrationCredentials,
  type MigrationEnvironment,
  type MigrationOptions,
  type MigrationResult,
  migrate,
  type RecoveryKeyStore,
} from './engine.ts';
export { MigrationError } from './errors.ts';
export {
  describeNextStep,
  type DoctorAdvice,
  type InputField,
  type InputReason,
  type NextStep,
  type RunAgainReason,
} from './next-steps.ts';
export {
  type EventSink,
  type MigrationEvent,
  type MigrationStatus,
  type MissingBlob,
  type ProgressFigures,
  STEP_TITLES,
  type StepName,
} from './events.ts';
export type { DelegatedSession } from './session.ts';
export { type LockAttempt, MemoryStorage, type MigrationStorage } from './storage.ts';
