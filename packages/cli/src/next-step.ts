/**
 * The engine's next steps (@portage/migrate's NextStep) worded for the command line: which flag
 * or environment variable to give, and the exit code that tells a script what happened.
 */
import type { DoctorAdvice, InputField, NextStep } from '@portage/migrate/next-steps';

/** One or two sentences naming the flag to give or the command to run. */
export function commandLineNextStep(next: NextStep | DoctorAdvice): string {
  const text = sentence(next);
  return next.nothingChanged ? `${text} Nothing was changed.` : text;
}

function sentence(next: NextStep | DoctorAdvice): string {
  switch (next.kind) {
    case 'need-input':
      return inputSentence(next.field, next.reason);
    case 'need-sign-in-code':
      return next.reason === 'emailed'
        ? `The ${next.server ? `${next.server} server` : 'server'} emailed a sign-in code: run the same command again with --auth-factor-token <code from the email>.`
        : 'Run again with the newest code from the email (--auth-factor-token).';
    case 'need-plc-code':
      if (next.reason === 'emailed') return 'Run the same command again with --plc-token <code from the email>.';
      return next.purpose === 'add-rotation-key'
        ? 'Run the same command again without --plc-token to have a new code emailed, and give it exactly as the email shows it. The key file is kept and will be used.'
        : 'Run the same command again without --plc-token to have a new code emailed, and give it exactly as the email shows it. The identity was NOT changed; all data stays copied.';
    case 'run-again':
      return RUN_AGAIN[next.reason];
    case 'resume-after':
      return `Run the same command again after ${new Date(next.at).toLocaleString()}; it continues where it stopped.`;
    case 'publish-did-document':
      return `Publish the document shown above at https://${next.host}/.well-known/did.json, then run the same command again; it checks before activating.`;
    case 'wait-for-other-run':
      return next.location
        ? `Wait for it to finish, or remove ${next.location} if it crashed.`
        : 'Wait for the other run to finish.';
    case 'already-moved':
      return 'Nothing to migrate. To deactivate the old account, run again with --from-pds <old server URL>.';
    case 'fix-clock':
      return next.clock === 'this-device'
        ? `Set this computer's clock right (it is ${Math.abs(next.skewSeconds)} seconds off the servers), then run again.`
        : `Ask the operator of the ${next.clock === 'old-server' ? 'old' : 'new'} server to set its clock right (${Math.abs(next.skewSeconds)} seconds off), then run again.`;
    case 'blob-too-large':
      return `Ask the operator of the new server to raise its upload limit to at least ${next.bytes} bytes, or choose another server with --to.`;
    case 'old-account-unavailable':
      return 'Ask the operator of the old server to restore the account, or restore it elsewhere from a backup (portage restore).';
    case 'advice':
      return next.text;
    case 'finish-move':
      return finishMove(next);
    case 'restore-from-backup':
      return RESTORE_FROM_BACKUP[next.reason];
    case 'sign-in-to-repair':
      return next.server === 'current'
        ? 'Set PORTAGE_PASSWORD to the account password and run again with --fix.'
        : 'Set PORTAGE_OLD_PASSWORD to the password there and run again with --fix.';
  }
}

/** The doctor's "finish the move" as the `portage migrate` command line that does it. */
function finishMove(next: Extract<DoctorAdvice, { kind: 'finish-move' }>): string {
  const command = `portage migrate --from ${next.did} --to ${next.to}${next.fromPds ? ` --from-pds ${next.fromPds}` : ''}`;
  switch (next.stage) {
    case 'account-missing':
      return `Run \`${command}\` to create it there, or restore it from a backup with \`portage restore\`.`;
    case 'identity-mismatch':
      return `Run \`${command}\` again to finish the identity update, or \`portage identity show --did ${next.did}\` to see the document.`;
    case 'not-switched':
      return `To finish it, run \`${command}\` (it resumes and asks for the emailed code); to stay, delete the unused account on ${next.to}.`;
  }
}

const RESTORE_FROM_BACKUP: Record<Extract<DoctorAdvice, { kind: 'restore-from-backup' }>['reason'], string> = {
  unreachable:
    'Try again later; if that server is gone for good, restore the account from a backup with `portage restore`.',
  'no-account': 'Restore the account there from a backup with `portage restore`.',
  'taken-down': "Ask that server's operator, or move the account elsewhere from a backup with `portage restore`.",
};

function inputSentence(field: InputField, reason: Extract<NextStep, { kind: 'need-input' }>['reason']): string {
  switch (field) {
    case 'oldPassword':
      return reason === 'app-password'
        ? 'Set PORTAGE_OLD_PASSWORD to the account password (not an app password).'
        : 'Check PORTAGE_OLD_PASSWORD: it must be the password of the account on the old server.';
    case 'newPassword':
      return reason === 'mismatch'
        ? 'Set PORTAGE_NEW_PASSWORD to the password of the first attempt.'
        : 'Check PORTAGE_NEW_PASSWORD: it must be the password used when the account was created there.';
    case 'password':
      return reason === 'missing'
        ? 'Set PORTAGE_PASSWORD to the account password and run again.'
        : 'Check PORTAGE_PASSWORD: it must be the password of the account.';
    case 'did':
      return 'Check --did (and --plc-url if you use another PLC directory).';
    case 'handle':
      return reason === 'missing' ? 'Pass --handle <handle>.' : 'Choose a handle the new server accepts with --handle.';
    case 'email':
      return reason === 'missing'
        ? 'Run the same command again with --email <address>.'
        : 'Choose another address with --email.';
    case 'backup':
      switch (reason) {
        case 'missing':
          return 'Pass --backup <dir> with a backup of the account.';
        case 'mismatch':
          return 'Give --backup a backup of the account --did names.';
        case 'not-found':
          return 'Give --backup the folder that `portage backup` (or a migration) wrote, or the unpacked download from the wizard.';
        default:
          return 'Use another copy of the backup (or run `portage backup` again while the server still answers).';
      }
    case 'recoveryKey':
      return reason === 'missing'
        ? 'Give --recovery-key the file that holds your rotation key.'
        : 'Give --recovery-key the key file made when the key was added to this account.';
    case 'from':
      return reason === 'not-found'
        ? 'Check the spelling of --from (and --plc-url if you use another PLC directory), or pass the account DID (did:plc:...) instead.'
        : "Check --from: give the account's current handle or its DID.";
    case 'to':
      if (reason === 'same-server') return 'Give the new server with --to (it must differ from the old one).';
      if (reason === 'not-a-pds') return 'Check --to: it must be the base URL of a PDS, like https://pds.example.com.';
      return 'Fix --to.';
    case 'fromPds':
      return reason === 'missing' ? 'Pass the old server with --from-pds <url>.' : 'Fix --from-pds.';
    case 'plcUrl':
      if (reason === 'not-found') return 'Check --plc-url: it must be the directory that holds the account.';
      if (reason === 'unreachable') return 'Check --plc-url and the network, then run again.';
      return 'Fix --plc-url.';
    case 'newHandle':
      if (reason === 'taken') return 'Choose a free handle with --new-handle.';
      if (reason === 'missing') return 'Pass --new-handle <handle>.';
      return 'Choose a handle the new server accepts with --new-handle.';
    case 'newEmail':
      return reason === 'missing' ? 'Pass --new-email <address>.' : 'Choose another address with --new-email.';
    case 'inviteCode':
      return reason === 'missing'
        ? 'Ask the operator of the new server for an invite code and run again with --invite-code <code>.'
        : 'Check --invite-code (it may be used up).';
  }
}

const RUN_AGAIN: Record<Extract<NextStep, { kind: 'run-again' }>['reason'], string> = {
  unavailable: 'A server was unreachable or overloaded; run the same command again to continue where it stopped.',
  failed: 'Run the same command again to continue; if it fails the same way, the message above names the cause.',
  'missing-blobs':
    'The identity was NOT moved; the old account is untouched and still active. Run again to retry; a blob the old server no longer has must be re-uploaded or its record removed there first.',
  mismatch: 'Run the same command again; if it persists, report it to the operator of the new server.',
  'identity-pending': 'Run the same command again in a minute; it checks again.',
  'deactivate-old': 'Run the same command again to retry deactivating the old account.',
};

/** Exit codes of `portage migrate` (and restore): what a script needs to tell apart. */
export const EXIT = { done: 0, failed: 1, usage: 2, waitingForPlcToken: 3, resumeLater: 4 } as const;
