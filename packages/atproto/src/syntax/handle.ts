/**
 * Handles: DNS hostnames used as account names (https://atproto.com/specs/handle).
 * At least two labels; labels of 1-63 ASCII letters, digits and hyphens that neither start nor
 * end with a hyphen; at most 253 characters; the last label (TLD) starts with a letter, which
 * also keeps IPv4 addresses out. Reserved TLDs (.local, .arpa, ...) are a policy question for
 * the server, not a syntax one, so they pass here.
 */
import { describeCharAt, isAsciiAlnum, isAsciiLetter } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const HANDLE_MAX_LENGTH = 253;
export const HANDLE_LABEL_MAX_LENGTH = 63;

export function findHandleProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n === 0) return 'empty';
  if (n > HANDLE_MAX_LENGTH) return `longer than ${HANDLE_MAX_LENGTH} characters (${n})`;
  let labelStart = 0;
  let labels = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? input.charCodeAt(i) : 46;
    if (c === 46) {
      const length = i - labelStart;
      if (length === 0) {
        if (labelStart === 0) return 'starts with a dot';
        return i === n ? 'ends with a dot' : `empty label at position ${i}`;
      }
      if (length > HANDLE_LABEL_MAX_LENGTH) {
        return `label ${labels + 1} exceeds ${HANDLE_LABEL_MAX_LENGTH} characters (${length})`;
      }
      if (input.charCodeAt(labelStart) === 45) return `label ${labels + 1} starts with a hyphen`;
      if (input.charCodeAt(i - 1) === 45) return `label ${labels + 1} ends with a hyphen`;
      labels++;
      if (i < n) labelStart = i + 1;
    } else if (!isAsciiAlnum(c) && c !== 45) {
      return `${describeCharAt(input, i)} is not allowed (ASCII letters, digits, hyphens and dots only)`;
    }
  }
  if (labels < 2) return 'needs at least two dot-separated labels';
  if (!isAsciiLetter(input.charCodeAt(labelStart))) return 'the last label (top-level domain) must start with a letter';
  return null;
}

export function isValidHandle(input: unknown): input is string {
  return findHandleProblem(input) === null;
}

export function assertValidHandle(input: unknown): asserts input is string {
  assertNoProblem('handle', input, findHandleProblem(input));
}

/** Handles are case-insensitive; the lowercase form is the one stored and compared. */
export function normalizeHandle(handle: string): string {
  return handle.toLowerCase();
}

/** Validates, then returns the normalized (lowercase) handle. */
export function parseHandle(input: unknown): string {
  assertValidHandle(input);
  return normalizeHandle(input);
}
