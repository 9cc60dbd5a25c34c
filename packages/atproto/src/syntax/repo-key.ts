/**
 * Keys of the repository's Merkle Search Tree: `<collection>/<rkey>`.
 *
 * Two strengths, because the MST both writes and reads:
 * - `isValidRepoKey` is the spec rule for keys we create: collection a valid NSID, record key a
 *   valid record key, at most 1024 characters.
 * - `isValidMstKey` is the structural rule the reference implementation enforces when it reads a
 *   tree (one `/`, both sides non-empty, record-key characters only, at most 1024 characters).
 *   Repositories imported from other servers must only be held to this one, or an account could
 *   become impossible to migrate because of one odd old key.
 */
import { describeCharAt } from './chars.ts';
import { assertNoProblem } from './errors.ts';
import { findNsidProblem } from './nsid.ts';
import { findRecordKeyProblem, isRecordKeyChar } from './record-key.ts';

export const REPO_KEY_MAX_LENGTH = 1024;

export function findRepoKeyProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  if (input.length > REPO_KEY_MAX_LENGTH) return `longer than ${REPO_KEY_MAX_LENGTH} characters (${input.length})`;
  const slash = input.indexOf('/');
  if (slash === -1) return 'must be <collection>/<record key>';
  if (input.indexOf('/', slash + 1) !== -1) return 'must contain exactly one "/"';
  const collectionProblem = findNsidProblem(input.slice(0, slash));
  if (collectionProblem !== null) return `collection is not a valid NSID: ${collectionProblem}`;
  const rkeyProblem = findRecordKeyProblem(input.slice(slash + 1));
  if (rkeyProblem !== null) return `record key: ${rkeyProblem}`;
  return null;
}

export function isValidRepoKey(input: unknown): input is string {
  return findRepoKeyProblem(input) === null;
}

export function assertValidRepoKey(input: unknown): asserts input is string {
  assertNoProblem('repo key', input, findRepoKeyProblem(input));
}

export function findMstKeyProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n > REPO_KEY_MAX_LENGTH) return `longer than ${REPO_KEY_MAX_LENGTH} characters (${n})`;
  let slash = -1;
  for (let i = 0; i < n; i++) {
    const c = input.charCodeAt(i);
    if (c === 47) {
      if (slash !== -1) return 'must contain exactly one "/"';
      slash = i;
    } else if (!isRecordKeyChar(c)) {
      return `${describeCharAt(input, i)} is not allowed`;
    }
  }
  if (slash === -1) return 'must be <collection>/<record key>';
  if (slash === 0) return 'collection is empty';
  if (slash === n - 1) return 'record key is empty';
  return null;
}

export function isValidMstKey(input: unknown): input is string {
  return findMstKeyProblem(input) === null;
}

export function assertValidMstKey(input: unknown): asserts input is string {
  assertNoProblem('repo key', input, findMstKeyProblem(input));
}

export interface ParsedRepoKey {
  collection: string;
  rkey: string;
}

/** Splits a key that passes the strict rule. */
export function parseRepoKey(input: unknown): ParsedRepoKey {
  assertValidRepoKey(input);
  const slash = input.indexOf('/');
  return { collection: input.slice(0, slash), rkey: input.slice(slash + 1) };
}
