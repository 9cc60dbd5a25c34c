/**
 * The Lexicon `cid` string format (https://atproto.com/specs/lexicon#cid): a syntax check only,
 * 8-256 characters of multibase alphabet (`A-Za-z0-9+=`), and not a CIDv0 (`Qm...`), which
 * atproto does not use. To decode a CID (and so check it for real) use `parseCid` in ../cid.ts;
 * records carry CIDs as binary links, so this string form is only for fields typed `cid`.
 */
import { describeCharAt, isAsciiAlnum } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const CID_STRING_MIN_LENGTH = 8;
export const CID_STRING_MAX_LENGTH = 256;

export function findCidStringProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n < CID_STRING_MIN_LENGTH) return `shorter than ${CID_STRING_MIN_LENGTH} characters (${n})`;
  if (n > CID_STRING_MAX_LENGTH) return `longer than ${CID_STRING_MAX_LENGTH} characters (${n})`;
  for (let i = 0; i < n; i++) {
    const c = input.charCodeAt(i);
    if (!isAsciiAlnum(c) && c !== 43 && c !== 61) return `${describeCharAt(input, i)} is not allowed`;
  }
  if (input.startsWith('Qm')) return 'CIDv0 is not supported';
  return null;
}

export function isValidCidString(input: unknown): input is string {
  return findCidStringProblem(input) === null;
}

export function assertValidCidString(input: unknown): asserts input is string {
  assertNoProblem('CID string', input, findCidStringProblem(input));
}
