/**
 * The engine says what to do next as data (NextStep): which input it wants and why, which code,
 * when to come back. The wizard keeps the engine's account of what happened, says what to do on
 * this page (its fields and buttons), and picks the screen where the user can do it.
 */
import { describeNextStep, type InputField, type NextStep, type StepName } from '@portage/migrate';
import type { DoctorAdvice } from '@portage/migrate/next-steps';
import { sentence } from './format.ts';

export type Screen = 'who' | 'signin' | 'account' | 'transfer' | 'identity';

export interface Failure {
  screen: Screen;
  text: string;
}

/** The fields of the new-account screen, as the page labels them. */
const ACCOUNT_FIELDS: Partial<Record<InputField, string>> = {
  to: 'the address of the new PDS',
  newHandle: 'the handle',
  newEmail: 'the email address',
  newPassword: 'the new password',
  inviteCode: 'the invite code',
};

export function wizardFailure(step: StepName, message: string, next: NextStep): Failure {
  const what = sentence(message);
  const unchanged = next.nothingChanged ? ' Nothing was changed.' : '';
  const account = (field: string): Failure => ({
    screen: 'account',
    text: `${what} Change ${field} and press Start transfer.${unchanged}`,
  });
  const transfer = (then: string): Failure => ({ screen: 'transfer', text: `${what} ${then}` });
  switch (next.kind) {
    case 'need-input': {
      if (next.field === 'oldPassword') {
        return {
          screen: 'signin',
          text:
            next.reason === 'app-password'
              ? `That is an app password. Enter the account's main password and press Continue.${unchanged}`
              : next.reason === 'signed-out'
                ? `Your current server no longer accepts the sign-in. Press Sign in with your server again, or enter your password, then press Continue.${unchanged || ' What was done so far is kept: the move goes on from where it stopped.'}`
                : `Your current server did not accept that password. Check the password of your account there and press Continue.${unchanged}`,
        };
      }
      if (next.field === 'newPassword' && next.reason !== 'missing') {
        return account('the new password to the one you chose the first time');
      }
      if (next.field === 'to' && next.reason === 'same-server') {
        return { screen: 'who', text: `${what} There is nothing to move: enter another account, or close this page.` };
      }
      const field = ACCOUNT_FIELDS[next.field];
      if (field) return account(field);
      return { screen: 'who', text: `${what} Check the handle or DID and press Continue.${unchanged}` };
    }
    case 'need-sign-in-code':
      return {
        screen: 'signin',
        text: `Your current server did not accept that sign-in code. Enter the newest code from the email and press Continue.${unchanged}`,
      };
    case 'need-plc-code':
      return {
        screen: 'identity',
        text: `${what} Your identity was not changed and all data stays copied. Press Continue to have a new code emailed.`,
      };
    case 'wait-for-other-run':
      return {
        screen: 'signin',
        text: 'This account is being moved in another tab or window of this browser. Finish there, or close that tab and press Continue here.',
      };
    case 'already-moved':
      return { screen: 'who', text: `${what} There is nothing to move: enter another account, or close this page.` };
    case 'resume-after':
      return transfer(
        `Come back to this page after ${new Date(next.at).toLocaleString()} and press Continue to go on.`,
      );
    case 'fix-clock':
      return transfer(
        next.clock === 'this-device'
          ? `Set this device's clock right, then press Continue.${unchanged}`
          : `Ask the operator of the ${next.clock === 'old-server' ? 'current' : 'new'} server to set its clock right, then press Continue.${unchanged}`,
      );
    case 'blob-too-large':
      return {
        screen: 'account',
        text: `${what} Ask the new server's operator to raise its upload limit, or choose another server, then press Start transfer.${unchanged}`,
      };
    case 'old-account-unavailable':
      return {
        screen: 'who',
        text: `${what} Ask your current server's operator to restore the account, or restore it from a backup, then close this page.${unchanged}`,
      };
    case 'publish-did-document':
      return transfer(`Publish the document shown at https://${next.host}/.well-known/did.json and press Continue.`);
    case 'run-again':
      if (next.reason === 'identity-pending' || step === 'identity') {
        return {
          screen: 'identity',
          text: `${what} Your identity was not changed and all data stays copied. Press Continue to have a new code emailed.`,
        };
      }
      return transfer('What was copied so far is kept: press Continue to pick up where it stopped.');
    case 'advice':
      if (step === 'resolve')
        return { screen: 'who', text: `${what} Check the handle or DID and press Continue.${unchanged}` };
      if (step === 'login-old') {
        return {
          screen: 'signin',
          text: `${what} Check the password of your account on your current server and press Continue.${unchanged}`,
        };
      }
      if (step === 'inspect-new') return account('the address of the new PDS');
      if (step === 'create-account') return account('the details');
      return transfer('What was copied so far is kept: press Continue to pick up where it stopped.');
  }
}

/** The fields of the restore screen, as the page labels them. */
const RESTORE_FIELDS: Partial<Record<InputField, string>> = {
  to: 'the address of the new PDS',
  handle: 'the handle',
  newHandle: 'the handle',
  email: 'the email address',
  newEmail: 'the email address',
  newPassword: 'the password',
  inviteCode: 'the invite code',
};

/**
 * What to do after a restore stopped, on the restore screen: what happened, then the next step in
 * the page's own words (its choosers and the Restore button).
 */
export function restoreFailure(message: string, next: NextStep): string {
  const what = sentence(message);
  const unchanged = next.nothingChanged ? ' Nothing was changed.' : '';
  if (next.kind === 'need-input') {
    if (next.field === 'recoveryKey') {
      return `${what} Choose the key file made when the recovery key was added to this account, then press Restore.${unchanged}`;
    }
    if (next.field === 'backup') {
      return `${what} Choose another copy of the backup (the .tar the wizard downloaded), then press Restore.${unchanged}`;
    }
    const field = RESTORE_FIELDS[next.field];
    if (field) return `${what} Change ${field} and press Restore.${unchanged}`;
  }
  if (next.kind === 'publish-did-document') {
    return `${what} Publish the document shown below at https://${next.host}/.well-known/did.json, then press Restore: it is checked before the restore goes on.`;
  }
  if (next.kind === 'run-again' || next.kind === 'advice') {
    return `${what} What was restored so far is kept: press Restore to pick up where it stopped.`;
  }
  return `${what} ${describeNextStep(next)}`;
}

/** What the account check advises for a finding it cannot repair, in the check screen's terms. */
export function checkAdvice(next: NextStep | DoctorAdvice): string {
  if (next.kind === 'sign-in-to-repair') {
    return next.server === 'current'
      ? 'Press Check again, enter the password of the server your identity points to under Password, and press Check.'
      : 'Press Check again, enter the password of the other server under Password on the other server, and press Check.';
  }
  return describeNextStep(next);
}
