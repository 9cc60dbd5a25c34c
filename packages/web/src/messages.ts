/**
 * The engine words its next steps for the command line ("Pass --new-handle"). The wizard keeps
 * the engine's account of what happened, says what to do on this page instead, and picks the
 * screen where the user can do it. It keys on the failure's code (the engine's stable name for
 * the situation) and, for refusals a server words its own way, on the step and the message.
 */
import type { StepName } from '@portage/migrate';
import { sentence } from './format.ts';

export type Screen = 'who' | 'signin' | 'account' | 'transfer' | 'identity';

export interface Failure {
  screen: Screen;
  text: string;
}

const WHO = new Set(['UnknownHandle', 'InvalidHandle', 'HandleMismatch', 'DidNotFound', 'InvalidDid', 'NoPds']);
const SIGNIN_CODE = new Set(['AuthFactorTokenRequired', 'InvalidAuthFactorToken']);

export function wizardFailure(step: StepName, message: string, next: string, code?: string): Failure {
  const what = sentence(message);
  const unchanged = /nothing was changed/i.test(next) ? ' Nothing was changed.' : '';
  const account = (field: string): Failure => ({
    screen: 'account',
    text: `${what} Change ${field} and press Start transfer.${unchanged}`,
  });
  if (code === 'MigrationRunning') {
    return {
      screen: 'signin',
      text: 'This account is being moved in another tab or window of this browser. Finish there, or close that tab and press Continue here.',
    };
  }
  if (code === 'SameServer' || code === 'AlreadyMigrated') {
    return { screen: 'who', text: `${what} There is nothing to move: enter another account, or close this page.` };
  }
  if (step === 'resolve' || (code && WHO.has(code) && step !== 'create-account')) {
    return { screen: 'who', text: `${what} Check the handle or DID and press Continue.${unchanged}` };
  }
  if (code && SIGNIN_CODE.has(code)) {
    return {
      screen: 'signin',
      text: `Your current server did not accept that sign-in code. Enter the newest code from the email and press Continue.${unchanged}`,
    };
  }
  if (code === 'AppPassword') {
    return {
      screen: 'signin',
      text: `That is an app password. Enter the account's main password and press Continue.${unchanged}`,
    };
  }
  if (code === 'WrongPassword') {
    return {
      screen: 'signin',
      text: `Your current server did not accept that password. Check the password of your account there and press Continue.${unchanged}`,
    };
  }
  if (step === 'login-old') {
    return {
      screen: 'signin',
      text: `${what} Check the password of your account on your current server and press Continue.${unchanged}`,
    };
  }
  if (code === 'NotAPds' || code === 'InvalidUrl' || step === 'inspect-new') {
    return {
      screen: 'account',
      text: `${what} Check the address of the new PDS and press Start transfer.${unchanged}`,
    };
  }
  if (code === 'NewPasswordMismatch' || code === 'NewLoginFailed') {
    return account('the new password to the one you chose the first time');
  }
  if (step === 'create-account') {
    // The new server's own refusals carry its error names; their wording says which field.
    const said = `${code ?? ''} ${message} ${next}`;
    if (/invite/i.test(said)) return account('the invite code');
    if (/handle/i.test(said)) return account('the handle');
    if (/mail/i.test(said)) return account('the email address');
    if (/password/i.test(said)) return account('the new password');
    return account('the details');
  }
  if (step === 'identity' || code === 'PlcTokenRejected') {
    return {
      screen: 'identity',
      text: `${what} Your identity was not changed and all data stays copied. Press Continue to have a new code emailed.`,
    };
  }
  return {
    screen: 'transfer',
    text: `${what} What was copied so far is kept: press Continue to pick up where it stopped.`,
  };
}
