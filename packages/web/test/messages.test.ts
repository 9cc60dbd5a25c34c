/**
 * The wizard's failure sentences: each engine failure lands on the screen where the user can fix
 * it, with a sentence that says what to do on the page and never a command-line flag.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NextStep, StepName } from '@portage/migrate';
import { OAuthError } from '@portage/atproto/oauth/errors';
import { checkAdvice, restoreFailure, wizardFailure } from '../src/messages.ts';
import { PopupBlocked, signInFailure } from '../src/oauth.ts';

const cases: [StepName, string, NextStep, string][] = [
  [
    'resolve',
    'no account found for the handle a.test',
    { kind: 'need-input', field: 'from', reason: 'not-found', nothingChanged: true },
    'who',
  ],
  [
    'resolve',
    'another migration of did:plc:x is running',
    { kind: 'wait-for-other-run', nothingChanged: true },
    'signin',
  ],
  [
    'login-old',
    'http://old refused the password',
    { kind: 'need-input', field: 'oldPassword', reason: 'wrong' },
    'signin',
  ],
  [
    'login-old',
    'the old server did not accept the sign-in code',
    { kind: 'need-sign-in-code', server: 'old', reason: 'rejected' },
    'signin',
  ],
  [
    'login-old',
    'http://old no longer accepts the sign-in (InvalidToken)',
    { kind: 'need-input', field: 'oldPassword', reason: 'signed-out', nothingChanged: true },
    'signin',
  ],
  [
    'login-old',
    'that is an app password',
    { kind: 'need-input', field: 'oldPassword', reason: 'app-password' },
    'signin',
  ],
  [
    'inspect-new',
    'https://x does not answer as a PDS',
    { kind: 'need-input', field: 'to', reason: 'not-a-pds' },
    'account',
  ],
  [
    'create-account',
    'the handle a.test belongs to another account',
    { kind: 'need-input', field: 'newHandle', reason: 'taken' },
    'account',
  ],
  [
    'create-account',
    'https://x requires an invite code',
    { kind: 'need-input', field: 'inviteCode', reason: 'missing' },
    'account',
  ],
  [
    'create-account',
    'the new server refused: Provided invite code not available',
    { kind: 'need-input', field: 'inviteCode', reason: 'invalid' },
    'account',
  ],
  [
    'create-account',
    'already has this account',
    { kind: 'need-input', field: 'newPassword', reason: 'mismatch' },
    'account',
  ],
  [
    'create-account',
    'blob x is 9 MB; the new server takes 5 MB',
    { kind: 'blob-too-large', cid: 'x', bytes: 9e6, limit: 5e6 },
    'account',
  ],
  ['identity', 'the old server refused 3 PLC tokens', { kind: 'need-plc-code', reason: 'rejected' }, 'identity'],
  ['blobs', '2 blobs could not be copied', { kind: 'run-again', reason: 'missing-blobs' }, 'transfer'],
  [
    'blobs',
    'the new server allows no more uploads today',
    { kind: 'resume-after', at: '2030-01-01T10:00:00.000Z' },
    'transfer',
  ],
  [
    'inspect-new',
    'the clock of this device is 400 seconds off',
    { kind: 'fix-clock', clock: 'this-device', skewSeconds: 400 },
    'transfer',
  ],
];

describe('wizard failure sentences', () => {
  for (const [step, message, next, screen] of cases) {
    it(`${next.kind}${'field' in next ? ` ${next.field}` : ''} at ${step}: the ${screen} screen, in the page's terms`, () => {
      const f = wizardFailure(step, message, next);
      assert.equal(f.screen, screen);
      assert.doesNotMatch(f.text, /--|PORTAGE_|command/);
      assert.match(f.text, /(press|enter|close|come back) /i, 'it says what to do');
      assert.match(f.text, /\.$/);
    });
  }
});

describe('signed out of the old server', () => {
  it('at sign-in, nothing was changed; mid-move, what was done is kept', () => {
    const at = (nothingChanged?: boolean) =>
      wizardFailure('login-old', 'http://old no longer accepts the sign-in (InvalidToken)', {
        kind: 'need-input',
        field: 'oldPassword',
        reason: 'signed-out',
        ...(nothingChanged ? { nothingChanged } : {}),
      }).text;
    assert.match(at(true), /press Continue\. Nothing was changed\.$/);
    assert.match(at(), /press Continue\. What was done so far is kept: the move goes on from where it stopped\.$/);
  });
});

describe('account check advice', () => {
  it("names the check screen's fields for a sign-in a repair needs, and words the rest plainly", () => {
    assert.match(
      checkAdvice({ kind: 'sign-in-to-repair', server: 'other' }),
      /under Password on the other server, and press Check\.$/,
    );
    assert.match(checkAdvice({ kind: 'sign-in-to-repair', server: 'current' }), /under Password, and press Check\.$/);
    const other = checkAdvice({ kind: 'restore-from-backup', reason: 'no-account' });
    assert.doesNotMatch(other, /--|PORTAGE_/);
    assert.match(other, /\.$/);
  });
});

describe('OAuth sign-in failure sentences', () => {
  const failures: [string, unknown, RegExp][] = [
    [
      'refused consent',
      new OAuthError('access-denied', 'The user denied access'),
      /refused or cancelled, so nothing was changed/,
    ],
    [
      'another account',
      new OAuthError('wrong-account', 'for did:plc:b'),
      /as another account\. .*sign in there as alice\.test, or use your password below\.$/,
    ],
    [
      'an unreachable server',
      new OAuthError('unreachable', 'did not answer'),
      /did not answer\. Check your connection/,
    ],
    ['a blocked window', new PopupBlocked(), /Allow pop-ups for this page/],
    ['no usable OAuth', new OAuthError('unsupported', 'no PAR'), /use your password below\.$/],
  ];
  for (const [what, err, expected] of failures) {
    it(`${what}: says what happened and what to press`, () => {
      const text = signInFailure(err, 'old.example', 'alice.test');
      assert.match(text, expected);
      assert.match(text, /(press Sign in with your server|use your password below)/);
      assert.match(text, /\.$/);
    });
  }
});

const restoreCases: [string, NextStep, RegExp][] = [
  [
    'the key in k.txt (did:key:z) is not one of the rotation keys of did:plc:x, now or before',
    { kind: 'need-input', field: 'recoveryKey', reason: 'mismatch', nothingChanged: true },
    /Choose the key file .*press Restore\. Nothing was changed\.$/,
  ],
  [
    'the backup of did:plc:x in b.tar is damaged: blob b is missing',
    { kind: 'need-input', field: 'backup', reason: 'invalid', nothingChanged: true },
    /Choose another copy of the backup .*press Restore\. Nothing was changed\.$/,
  ],
  [
    'the new server refused the handle a.test',
    { kind: 'need-input', field: 'handle', reason: 'invalid' },
    /Change the handle and press Restore\.$/,
  ],
  [
    'the new server is unavailable',
    { kind: 'run-again', reason: 'unavailable' },
    /press Restore to pick up where it stopped\.$/,
  ],
  [
    'the DID must be published',
    { kind: 'publish-did-document', host: 'a.example' },
    /a\.example\/.well-known\/did\.json, then press Restore/,
  ],
];

describe('restore failure sentences', () => {
  for (const [message, next, expected] of restoreCases) {
    it(`${next.kind}${'field' in next ? ` ${next.field}` : ''}: in the restore screen's terms`, () => {
      const text = restoreFailure(message, next);
      assert.match(text, expected);
      assert.doesNotMatch(text, /--|PORTAGE_|command/);
      assert.match(text, /\.$/);
    });
  }
});
