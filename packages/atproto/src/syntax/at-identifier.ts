/**
 * at-identifier: where the protocol accepts "an account", either a DID or a handle. Anything
 * starting with `did:` is judged as a DID (so `did:thing.test` is a bad DID, never a handle).
 */
import { findDidProblem } from './did.ts';
import { assertNoProblem } from './errors.ts';
import { findHandleProblem } from './handle.ts';

export function findAtIdentifierProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  if (input.startsWith('did:')) {
    const problem = findDidProblem(input);
    return problem === null ? null : `not a valid DID: ${problem}`;
  }
  const problem = findHandleProblem(input);
  return problem === null ? null : `not a DID, and not a valid handle: ${problem}`;
}

export function isValidAtIdentifier(input: unknown): input is string {
  return findAtIdentifierProblem(input) === null;
}

export function assertValidAtIdentifier(input: unknown): asserts input is string {
  assertNoProblem('at-identifier', input, findAtIdentifierProblem(input));
}

/** True for strings that are judged as DIDs (and must then be valid ones). */
export function looksLikeDid(input: string): boolean {
  return input.startsWith('did:');
}
