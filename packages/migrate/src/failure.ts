/** Turning whatever stopped a run into a MigrationError that says what to do next. */
import { normalizeServiceUrl } from '@portage/atproto/identity/did-document';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { MigrationError } from './errors.ts';
import { STEP_TITLES, type StepName } from './events.ts';
import type { NextStep } from './next-steps.ts';
import { describeError } from './retry.ts';

/** Any failure as a MigrationError with a next-step sentence. */
export function toMigrationError(err: unknown, step: StepName): MigrationError {
  if (err instanceof MigrationError) return err;
  if (err instanceof XrpcClientError) {
    const where = `${err.nsid} failed${err.status ? ` with HTTP ${err.status}` : ''}`;
    const next: NextStep = {
      kind: 'run-again',
      reason: err.status === 0 || err.status >= 500 || err.status === 429 ? 'unavailable' : 'failed',
    };
    return new MigrationError(err.error, `${where}: ${err.message}`, next, { cause: err });
  }
  return new MigrationError(
    'Unexpected',
    `${STEP_TITLES[step]}: ${describeError(err)}`,
    { kind: 'run-again', reason: 'failed' },
    { cause: err },
  );
}

const URL_NAMES = { to: 'the new server', fromPds: 'the old server', plcUrl: 'the PLC directory' } as const;

/** `value` as a normalized http(s) URL; anything else stops the run, naming the input (`field`). */
export function checkedServiceUrl(value: string, field: 'to' | 'fromPds' | 'plcUrl'): string {
  const normalized = normalizeServiceUrl(value);
  if (normalized !== undefined) return normalized;
  throw new MigrationError('InvalidUrl', `the address of ${URL_NAMES[field]} is not an http(s) URL: "${value}"`, {
    kind: 'need-input',
    field,
    reason: 'invalid',
    nothingChanged: true,
  });
}
