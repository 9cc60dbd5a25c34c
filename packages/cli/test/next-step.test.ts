/**
 * The engine's typed next steps, worded for the command line: each names the flag or variable
 * to give (the engine itself names none), and the exit codes scripts tell apart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DoctorAdvice, describeNextStep, type NextStep } from '@portage/migrate';
import { commandLineNextStep, EXIT } from '../src/next-step.ts';

const cases: [NextStep | DoctorAdvice, RegExp][] = [
  [{ kind: 'need-input', field: 'newHandle', reason: 'taken' }, /--new-handle/],
  [{ kind: 'need-input', field: 'newHandle', reason: 'invalid' }, /--new-handle/],
  [{ kind: 'need-input', field: 'newEmail', reason: 'invalid' }, /--new-email/],
  [{ kind: 'need-input', field: 'inviteCode', reason: 'missing' }, /--invite-code <code>/],
  [{ kind: 'need-input', field: 'oldPassword', reason: 'wrong' }, /PORTAGE_OLD_PASSWORD/],
  [{ kind: 'need-input', field: 'newPassword', reason: 'mismatch' }, /PORTAGE_NEW_PASSWORD/],
  [{ kind: 'need-input', field: 'fromPds', reason: 'missing' }, /--from-pds <url>/],
  [{ kind: 'need-input', field: 'to', reason: 'not-a-pds' }, /--to/],
  [{ kind: 'need-sign-in-code', server: 'old', reason: 'emailed' }, /--auth-factor-token/],
  [{ kind: 'need-plc-code', reason: 'emailed' }, /--plc-token <code from the email>/],
  [{ kind: 'resume-after', at: '2030-01-02T03:04:05.000Z' }, /run the same command again after .*2030/i],
  [{ kind: 'blob-too-large', cid: 'bafk', bytes: 9_000_000, limit: 5_000_000 }, /--to/],
  [{ kind: 'already-moved' }, /--from-pds/],
  // A restore's, the doctor's and the identity tools' inputs.
  [{ kind: 'need-input', field: 'did', reason: 'not-found' }, /Check --did \(and --plc-url/],
  [{ kind: 'need-input', field: 'handle', reason: 'missing' }, /--handle <handle>/],
  [{ kind: 'need-input', field: 'email', reason: 'missing' }, /--email <address>/],
  [{ kind: 'need-input', field: 'password', reason: 'wrong' }, /PORTAGE_PASSWORD/],
  [{ kind: 'need-input', field: 'backup', reason: 'missing' }, /--backup <dir>/],
  [{ kind: 'need-input', field: 'backup', reason: 'mismatch' }, /--backup .*--did/],
  [{ kind: 'need-input', field: 'backup', reason: 'not-found' }, /--backup the folder that `portage backup`/],
  [{ kind: 'need-input', field: 'backup', reason: 'invalid' }, /`portage backup` again/],
  [{ kind: 'need-input', field: 'recoveryKey', reason: 'mismatch' }, /--recovery-key/],
  [{ kind: 'need-input', field: 'plcUrl', reason: 'unreachable' }, /--plc-url and the network/],
  [{ kind: 'need-sign-in-code', reason: 'emailed' }, /^The server emailed .*--auth-factor-token/],
  [
    { kind: 'need-plc-code', reason: 'rejected', purpose: 'add-rotation-key' },
    /without --plc-token .*The key file is kept and will be used\.$/,
  ],
  [
    {
      kind: 'finish-move',
      did: 'did:plc:abc',
      to: 'https://new.example',
      fromPds: 'https://old.example',
      stage: 'account-missing',
    },
    /`portage migrate --from did:plc:abc --to https:\/\/new\.example --from-pds https:\/\/old\.example` .*`portage restore`/,
  ],
  [
    { kind: 'finish-move', did: 'did:plc:abc', to: 'https://new.example', stage: 'identity-mismatch' },
    /`portage migrate --from did:plc:abc --to https:\/\/new\.example` again .*`portage identity show --did did:plc:abc`/,
  ],
  [
    { kind: 'finish-move', did: 'did:plc:abc', to: 'https://new.example', stage: 'not-switched' },
    /run `portage migrate --from did:plc:abc --to https:\/\/new\.example` \(it resumes/,
  ],
  [{ kind: 'restore-from-backup', reason: 'unreachable' }, /Try again later; .*`portage restore`/],
  [{ kind: 'sign-in-to-repair', server: 'current' }, /PORTAGE_PASSWORD .*--fix/],
  [{ kind: 'sign-in-to-repair', server: 'other' }, /PORTAGE_OLD_PASSWORD .*--fix/],
];

describe('next steps on the command line', () => {
  for (const [next, flag] of cases) {
    it(`${next.kind}${'field' in next ? ` ${next.field}` : ''}`, () => {
      assert.match(commandLineNextStep(next), flag);
      assert.doesNotMatch(
        describeNextStep(next),
        /--|PORTAGE_|portage /,
        'the engine wording names no flag or command',
      );
    });
  }

  it('says when nothing was changed', () => {
    const next: NextStep = { kind: 'need-input', field: 'newHandle', reason: 'taken', nothingChanged: true };
    assert.match(commandLineNextStep(next), /Nothing was changed\.$/);
  });

  it('gives a stop at a daily limit its own exit code', () => {
    assert.deepEqual(EXIT, { done: 0, failed: 1, usage: 2, waitingForPlcToken: 3, resumeLater: 4 });
  });
});
