/**
 * The Lexicon `uri` format (https://atproto.com/specs/lexicon#uri): any RFC 3986 scheme
 * (`letter *(letter / digit / "+" / "-" / ".")` then `:`), a non-empty remainder without
 * whitespace that does not start with `/` after an optional `//`, at most 8 KiB of UTF-8.
 * Deliberately loose beyond that: the format names any URI, and resolving it is the caller's job.
 */
import { describeCharAt, isAsciiAlnum, isAsciiLetter } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const URI_MAX_BYTES = 8192;

const WHITESPACE = /\s/;
const encoder = new TextEncoder();

export function findUriProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  // Only encode when the UTF-16 length cannot settle it (each unit is at most 3 UTF-8 bytes).
  if (n > URI_MAX_BYTES || (n * 3 > URI_MAX_BYTES && encoder.encode(input).length > URI_MAX_BYTES)) {
    return `longer than ${URI_MAX_BYTES} bytes`;
  }
  if (n === 0) return 'empty';
  if (!isAsciiLetter(input.charCodeAt(0))) return 'scheme must start with a letter';
  let i = 1;
  for (; i < n; i++) {
    const c = input.charCodeAt(i);
    if (c === 58) break;
    if (!isAsciiAlnum(c) && c !== 43 && c !== 45 && c !== 46)
      return `scheme: ${describeCharAt(input, i)} is not allowed`;
  }
  if (i === n) return 'missing ":" after the scheme';
  let rest = i + 1;
  if (input.startsWith('//', rest)) rest += 2;
  if (rest === n) return 'nothing after the scheme';
  if (input.charCodeAt(rest) === 47) return `unexpected "/" at position ${rest}`;
  const space = WHITESPACE.exec(input);
  if (space !== null) return `whitespace (${describeCharAt(input, space.index)}) is not allowed`;
  return null;
}

export function isValidUri(input: unknown): input is string {
  return findUriProblem(input) === null;
}

export function assertValidUri(input: unknown): asserts input is string {
  assertNoProblem('URI', input, findUriProblem(input));
}
