/**
 * The wizard's failure sentences: each engine failure lands on the screen where the user can fix
 * it, with a sentence that says what to do on the page and never a command-line flag.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StepName } from '@portage/migrate';
import { wizardFailure } from '../src/messages.ts';

const cases: [StepName, string, string, string, string][] = [
  ['resolve', 'UnknownHandle', 'no account found for the handle a.test', 'Check the spelling of --from.', 'who'],
  ['resolve', 'MigrationRunning', 'another migration of did:plc:x is running', 'Nothing was changed.', 'signin'],
  ['login-old', 'WrongPassword', 'http://old refused the password', 'Check PORTAGE_OLD_PASSWORD.', 'signin'],
  [
    'login-old',
    'InvalidAuthFactorToken',
    'the old server did not accept the sign-in code',
    '--auth-factor-token',
    'signin',
  ],
  ['login-old', 'AppPassword', 'that is an app password', 'Set PORTAGE_OLD_PASSWORD.', 'signin'],
  ['inspect-new', 'NotAPds', 'https://x does not answer as a PDS', 'Check --to.', 'account'],
  ['create-account', 'HandleTaken', 'the handle a.test belongs to another account', '--new-handle', 'account'],
  ['create-account', 'InviteCodeRequired', 'https://x requires an invite code', '--invite-code', 'account'],
  ['create-account', 'InvalidInviteCode', 'the new server refused: Provided invite code not available', '', 'account'],
  ['create-account', 'NewPasswordMismatch', 'already has this account', 'PORTAGE_NEW_PASSWORD', 'account'],
  ['identity', 'PlcTokenRejected', 'the old server refused 3 PLC tokens', '--plc-token', 'identity'],
  ['blobs', 'MissingBlobs', '2 blobs could not be copied', 'Run the same command again.', 'transfer'],
];

describe('wizard failure sentences', () => {
  for (const [step, code, message, next, screen] of cases) {
    it(`${code} at ${step}: the ${screen} screen, in the page's terms`, () => {
      const f = wizardFailure(step, message, next, code);
      assert.equal(f.screen, screen);
      assert.doesNotMatch(f.text, /--|PORTAGE_|command/);
      assert.match(f.text, /(press|enter|close) /i, 'it says what to do');
      assert.match(f.text, /\.$/);
    });
  }
});
