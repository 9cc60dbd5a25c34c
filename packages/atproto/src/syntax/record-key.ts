/**
 * Record keys (https://atproto.com/specs/record-key): 1-512 characters of ASCII letters, digits
 * and `_~.:-`, and not `.` or `..` (they would read as path segments in AT-URIs and repo paths).
 */
import { describeCharAt, isAsciiAlnum } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const RECORD_KEY_MAX_LENGTH = 512;

export function isRecordKeyChar(c: number): boolean {
  // _ ~ . : -
  return isAsciiAlnum(c) || c === 95 || c === 126 || c === 46 || c === 58 || c === 45;
}

export function findRecordKeyProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n === 0) return 'empty';
  if (n > RECORD_KEY_MAX_LENGTH) return `longer than ${RECORD_KEY_MAX_LENGTH} characters (${n})`;
  for (let i = 0; i < n; i++) {
    if (!isRecordKeyChar(input.charCodeAt(i))) {
      return `${describeCharAt(input, i)} is not allowed (ASCII letters, digits and _~.:- only)`;
    }
  }
  if (input === '.' || input === '..') return '"." and ".." are not allowed';
  return null;
}

export function isValidRecordKey(input: unknown): input is string {
  return findRecordKeyProblem(input) === null;
}

export function assertValidRecordKey(input: unknown): asserts input is string {
  assertNoProblem('record key', input, findRecordKeyProblem(input));
}
