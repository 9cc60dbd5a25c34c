/**
 * What the user does next when a move stops, as data: the engine says which input is wanted and
 * why, or which code to give, or when to come back; each front end words it in its own terms
 * (the command line names flags, the wizard names fields and buttons). `describeNextStep` is the
 * wording for anyone else: plain sentences that name neither.
 */

/**
 * The inputs a move takes, by the names of MigrationOptions and MigrationCredentials, and those
 * of the tools beside it (a restore's RestoreOptions, the doctor's and the identity tools').
 */
export type InputField =
  | 'from'
  | 'to'
  | 'fromPds'
  | 'plcUrl'
  | 'oldPassword'
  | 'newPassword'
  | 'newHandle'
  | 'newEmail'
  | 'inviteCode'
  /** The account by its DID only (a restore, showing an identity). */
  | 'did'
  /** A restore's handle and email on the new server. */
  | 'handle'
  | 'email'
  /** The password of an account that stays on its one server (the doctor, adding a rotation key). */
  | 'password'
  /** A backup folder of the account. */
  | 'backup'
  /** The file of a rotation key the user holds. */
  | 'recoveryKey';

export type InputReason =
  /** Not given, and nothing to take it from. */
  | 'missing'
  /** Not in an accepted form (a URL, a handle), or refused as such by a server. */
  | 'invalid'
  /** Another account has it on the new server. */
  | 'taken'
  /** Refused (a password). */
  | 'wrong'
  /** Names nothing that exists (a handle or DID). */
  | 'not-found'
  /** Names something, but not what the rest says (a handle whose DID names another handle). */
  | 'mismatch'
  /** An app password where the account password is needed. */
  | 'app-password'
  /** A sign-in made without the password (OAuth) that the server no longer honours: sign in again. */
  | 'signed-out'
  /** The new server is the one the account lives on already. */
  | 'same-server'
  /** The address does not answer as a PDS. */
  | 'not-a-pds'
  /** The address did not answer at all (or the network is down). */
  | 'unreachable';

export type RunAgainReason =
  /** A server was unreachable, overloaded or failed: the same run again continues. */
  | 'unavailable'
  /** A step failed in a way the message names; running again retries it. */
  | 'failed'
  /** Blobs are missing on the new server (see missingBlobs). */
  | 'missing-blobs'
  /** What arrived does not match what was sent. */
  | 'mismatch'
  /** The PLC directory does not show the update yet. */
  | 'identity-pending'
  /** Only the old account's deactivation is left. */
  | 'deactivate-old';

export type NextStep = (
  | { kind: 'need-input'; field: InputField; reason: InputReason }
  /** The server emailed a sign-in code to the account's address (no `server`: the account's only one). */
  | { kind: 'need-sign-in-code'; server?: 'old' | 'new'; reason: 'emailed' | 'rejected' }
  /**
   * The identity update waits for the code the server emailed (the PLC token): a move's, or
   * (`purpose`) the one adding a rotation key, whose key file is kept for the next run.
   */
  | { kind: 'need-plc-code'; reason: 'emailed' | 'rejected'; purpose?: 'add-rotation-key' }
  | { kind: 'run-again'; reason: RunAgainReason }
  /** A daily limit is spent: the move goes on from `at` (ISO time), where it stopped. */
  | { kind: 'resume-after'; at: string }
  /** did:web: publish the document shown (a notice), then run again. */
  | { kind: 'publish-did-document'; host: string }
  /** Another run of this account holds its journal. */
  | { kind: 'wait-for-other-run'; location?: string }
  /** The DID points to the new server already; only the old server's address would let the old account be deactivated. */
  | { kind: 'already-moved' }
  /** A clock is too far off for the short-lived tokens a move needs. */
  | { kind: 'fix-clock'; clock: 'this-device' | 'old-server' | 'new-server'; skewSeconds: number }
  /** The new server cannot take this account as it is: a blob above its size limit. */
  | { kind: 'blob-too-large'; cid: string; bytes: number; limit: number }
  /** The old server holds the account but will not let it move (taken down, suspended). */
  | { kind: 'old-account-unavailable'; status: string }
  /** Advice that fits none of the above, already in words. */
  | { kind: 'advice'; text: string }
) & {
  /** True when the run changed nothing anywhere. */
  nothingChanged?: boolean;
};

/**
 * What the doctor advises for a finding it cannot repair itself. Only its findings carry these; a
 * move or a restore never stops with one.
 */
export type DoctorAdvice =
  /**
   * A move of `did` to `to` stopped midway and running it again finishes it (`fromPds`: the old
   * server, when the DID no longer names it). `stage` says where it stands:
   * `account-missing`, the DID names `to`, which has no account yet (restoring from a backup is
   * the other way out); `identity-mismatch`, `to` holds the account but not the DID document it
   * expects; `not-switched`, an account waits on `to` while the DID still names the working one
   * (staying means deleting the unused account).
   */
  (
    | {
        kind: 'finish-move';
        did: string;
        to: string;
        fromPds?: string;
        stage: 'account-missing' | 'identity-mismatch' | 'not-switched';
      }
    /**
     * The server the DID names cannot serve the account: it does not answer (try later first), has
     * no account for it, or took it down (its operator may restore it); a backup brings it back.
     */
    | { kind: 'restore-from-backup'; reason: 'unreachable' | 'no-account' | 'taken-down' }
    /** A repair needs the account's password on that server (`current`: the one the DID names). */
    | { kind: 'sign-in-to-repair'; server: 'current' | 'other' }
  ) & { nothingChanged?: boolean };

const FIELD_NAMES: Record<InputField, string> = {
  from: 'the account (handle or DID)',
  to: 'the new server address',
  fromPds: 'the old server address',
  plcUrl: 'the PLC directory address',
  oldPassword: 'the password of the account on the old server',
  newPassword: 'the password for the new server',
  newHandle: 'the handle on the new server',
  newEmail: 'the email address on the new server',
  inviteCode: 'the invite code',
  did: 'the DID of the account',
  handle: 'the handle on the new server',
  email: 'the email address on the new server',
  password: 'the account password',
  backup: 'a backup of the account',
  recoveryKey: 'the rotation key file',
};

/** The next step in plain sentences that name no flag or field of any front end. */
export function describeNextStep(next: NextStep | DoctorAdvice): string {
  const text = sentenceFor(next);
  return next.nothingChanged ? `${text} Nothing was changed.` : text;
}

function sentenceFor(next: NextStep | DoctorAdvice): string {
  switch (next.kind) {
    case 'need-input': {
      const field = FIELD_NAMES[next.field];
      if (next.field === 'backup') return BACKUP[next.reason] ?? `Check ${field}.`;
      if (next.field === 'recoveryKey' && next.reason === 'mismatch')
        return 'Give the key file made when the key was added to this account.';
      switch (next.reason) {
        case 'missing':
          return `Give ${field}.`;
        case 'unreachable':
          return `Check ${field} and the network, then run again.`;
        case 'taken':
          return `Choose another value for ${field}: it is taken on the new server.`;
        case 'app-password':
          return 'Give the account password, not an app password.';
        case 'signed-out':
          return 'Sign in to the old server again.';
        case 'same-server':
          return 'Give a new server that differs from the old one.';
        default:
          return `Check ${field}.`;
      }
    }
    case 'need-sign-in-code':
      return next.reason === 'emailed'
        ? `Run again with the sign-in code the ${next.server ? `${next.server} server` : 'server'} emailed.`
        : 'Run again with the newest sign-in code from the email.';
    case 'need-plc-code':
      if (next.reason === 'emailed') return 'Run again with the confirmation code (PLC token) from the email.';
      return next.purpose === 'add-rotation-key'
        ? 'Run again to have a new code emailed, and give it exactly as the email shows it. The key file is kept and will be used.'
        : 'Run again to have a new code emailed, and give it exactly as the email shows it. The identity was NOT changed; all data stays copied.';
    case 'run-again':
      return RUN_AGAIN[next.reason];
    case 'resume-after':
      return `Run again after ${next.at}; the move continues where it stopped.`;
    case 'publish-did-document':
      return `Publish the document shown above at https://${next.host}/.well-known/did.json, then run again; it checks before activating.`;
    case 'wait-for-other-run':
      return next.location
        ? `Wait for it to finish, or remove ${next.location} if it crashed.`
        : 'Wait for the other run to finish.';
    case 'already-moved':
      return 'Nothing to move. To deactivate the old account, give the old server address.';
    case 'fix-clock':
      return `Set ${next.clock === 'this-device' ? "this device's clock" : `the ${next.clock === 'old-server' ? 'old' : 'new'} server's clock`} right (it is ${Math.abs(next.skewSeconds)} seconds off), then run again.`;
    case 'blob-too-large':
      return 'Ask the new server operator to raise the upload limit, or choose another server.';
    case 'old-account-unavailable':
      return 'Ask the old server operator to restore the account, or restore it elsewhere from a backup.';
    case 'advice':
      return next.text;
    case 'finish-move':
      return FINISH_MOVE[next.stage](next);
    case 'restore-from-backup':
      return RESTORE_FROM_BACKUP[next.reason];
    case 'sign-in-to-repair':
      return next.server === 'current'
        ? 'Give the account password for the server the DID points to, and repair again.'
        : 'Give the account password for the old server, and repair again.';
  }
}

const BACKUP: Partial<Record<InputReason, string>> = {
  missing: 'Give a backup of the account.',
  'not-found': 'Give the folder a backup (or a migration) wrote, or the unpacked download from the wizard.',
  invalid: 'Use another copy of the backup (or back the account up again while its server still answers).',
  mismatch: 'Give a backup of the account named.',
};

const FINISH_MOVE: Record<
  Extract<DoctorAdvice, { kind: 'finish-move' }>['stage'],
  (next: Extract<DoctorAdvice, { kind: 'finish-move' }>) => string
> = {
  'account-missing': (n) =>
    `Move ${n.did} again from ${n.fromPds ?? 'its old server'} to ${n.to} to create it there, or restore it from a backup.`,
  'identity-mismatch': (n) =>
    `Move ${n.did} to ${n.to} again to finish the identity update, or look at its DID document.`,
  'not-switched': (n) =>
    `To finish it, move ${n.did} to ${n.to} again (it resumes and asks for the emailed code); to stay, delete the unused account on ${n.to}.`,
};

const RESTORE_FROM_BACKUP: Record<Extract<DoctorAdvice, { kind: 'restore-from-backup' }>['reason'], string> = {
  unreachable: 'Try again later; if that server is gone for good, restore the account from a backup.',
  'no-account': 'Restore the account there from a backup.',
  'taken-down': "Ask that server's operator, or move the account elsewhere from a backup.",
};

const RUN_AGAIN: Record<RunAgainReason, string> = {
  unavailable: 'A server was unreachable or overloaded; run again to continue where it stopped.',
  failed: 'Run again to continue; if it fails the same way, the message above names the cause.',
  'missing-blobs':
    'The identity was NOT moved; the old account is untouched and still active. Run again to retry; a blob the old server no longer has must be re-uploaded or its record removed there first.',
  mismatch: 'Run again; if it persists, report it to the new server operator.',
  'identity-pending': 'Run again in a minute; it checks again.',
  'deactivate-old': 'Run again to retry deactivating the old account.',
};
