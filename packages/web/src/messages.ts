/**
 * The engine words its next steps for the command line ("Pass --new-handle"). The wizard keeps
 * the engine's account of what happened and says what to do on this page instead, and picks the
 * screen where the user can do it.
 */
import type { StepName } from '@portage/migrate';
import { sentence } from './format.ts';

export type Screen = 'who' | 'signin' | 'account' | 'transfer' | 'identity';

export interface Failure {
  screen: Screen;
  text: string;
}

export function wizardFailure(step: StepName, message: string, next: string): Failure {
  const what = sentence(message);
  const unchanged = /nothing was changed/i.test(next) ? ' Nothing was changed.' : '';
  if (/another migration .* is running/i.test(message)) {
    return {
      screen: 'signin',
      text: 'This account is being moved in another tab or window of this browser. Finish there, or close that tab and press Continue here.',
    };
  }
  switch (step) {
    case 'resolve':
      return { screen: 'who', text: `${what} Check the handle or DID and press Continue.${unchanged}` };
    case 'login-old':
      if (/did not accept the sign-in code/i.test(message)) {
        return {
          screen: 'signin',
          text: `Your current server did not accept that sign-in code. Enter the newest code from the email and press Continue.${unchanged}`,
        };
      }
      if (/app password/i.test(message)) {
        return {
          screen: 'signin',
          text: `That is an app password. Enter the account's main password and press Continue.${unchanged}`,
        };
      }
      if (/refused the password/i.test(message)) {
        return {
          screen: 'signin',
          text: `Your current server did not accept that password. Check the password of your account there and press Continue.${unchanged}`,
        };
      }
      return {
        screen: 'signin',
        text: `${what} Check the password of your account on your current server and press Continue.${unchanged}`,
      };
    case 'inspect-new':
      return { screen: 'account', text: `${what} Check the address of the new PDS and press Continue.${unchanged}` };
    case 'create-account': {
      const field = /invite/i.test(`${message} ${next}`)
        ? 'the invite code'
        : /handle/i.test(`${message} ${next}`)
          ? 'another handle'
          : /mail/i.test(`${message} ${next}`)
            ? 'another email address'
            : /password/i.test(`${message} ${next}`)
              ? 'the new password you chose the first time'
              : 'the details';
      return { screen: 'account', text: `${what} Change ${field} and press Continue.${unchanged}` };
    }
    case 'identity':
      return {
        screen: 'identity',
        text: `${what} Your identity was not changed and all data stays copied. Press Continue to have a new code emailed.`,
      };
    default:
      return {
        screen: 'transfer',
        text: `${what} What was copied so far is kept: press Continue to pick up where it stopped.`,
      };
  }
}
