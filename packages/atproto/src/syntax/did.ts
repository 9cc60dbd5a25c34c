/**
 * DIDs as atproto constrains them (https://atproto.com/specs/did): `did:<method>:<identifier>`,
 * method of lowercase ASCII letters, identifier of ASCII letters, digits and `._:%-` that does not
 * end with `:` or `%`, at most 2048 characters. Percent-escapes are not decoded or checked for
 * hex digits, matching the reference implementation; method-specific rules (did:plc, did:web)
 * belong to the identity module.
 */
import { describeCharAt, isAsciiAlnum } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const DID_MAX_LENGTH = 2048;

function isDidIdentifierChar(c: number): boolean {
  // . _ : % -
  return isAsciiAlnum(c) || c === 46 || c === 95 || c === 58 || c === 37 || c === 45;
}

export function findDidProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n > DID_MAX_LENGTH) return `longer than ${DID_MAX_LENGTH} characters (${n})`;
  if (!input.startsWith('did:')) return 'must start with "did:"';
  let i = 4;
  while (i < n) {
    const c = input.charCodeAt(i);
    if (c < 97 || c > 122) break;
    i++;
  }
  if (i === 4) return 'method name is empty or not lowercase letters';
  if (i === n || input.charCodeAt(i) !== 58) {
    return i === n
      ? 'missing ":" after the method name'
      : `method name: ${describeCharAt(input, i)} is not a lowercase letter`;
  }
  const idStart = ++i;
  if (idStart === n) return 'method-specific identifier is empty';
  for (; i < n; i++) {
    if (!isDidIdentifierChar(input.charCodeAt(i))) return `${describeCharAt(input, i)} is not allowed`;
  }
  const last = input.charCodeAt(n - 1);
  if (last === 58 || last === 37) return 'must not end with ":" or "%"';
  return null;
}

export function isValidDid(input: unknown): input is string {
  return findDidProblem(input) === null;
}

export function assertValidDid(input: unknown): asserts input is string {
  assertNoProblem('DID', input, findDidProblem(input));
}

export interface ParsedDid {
  method: string;
  /** Everything after `did:<method>:`. */
  identifier: string;
}

export function parseDid(input: unknown): ParsedDid {
  assertValidDid(input);
  const colon = input.indexOf(':', 4);
  return { method: input.slice(4, colon), identifier: input.slice(colon + 1) };
}
