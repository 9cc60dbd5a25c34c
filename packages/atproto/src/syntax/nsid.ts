/**
 * Namespaced identifiers (https://atproto.com/specs/nsid): a reversed domain name (the
 * authority) followed by a name, e.g. `app.bsky.feed.post` = authority `feed.bsky.app`, name
 * `post`. At least three segments; authority segments follow hostname label rules (1-63
 * letters, digits, hyphens, no leading/trailing hyphen; the first one, the TLD, starts with a
 * letter); the name is 1-63 letters and digits starting
 * with a letter; the whole NSID is at most 317 characters (253 for a domain + dot + 63
 * for the name; the interop vectors hold the total, not the authority, to that budget).
 */
import { describeCharAt, isAsciiAlnum, isAsciiLetter } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const NSID_MAX_LENGTH = 317;
export const NSID_SEGMENT_MAX_LENGTH = 63;

export function findNsidProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n === 0) return 'empty';
  if (n > NSID_MAX_LENGTH) return `longer than ${NSID_MAX_LENGTH} characters (${n})`;
  const nameStart = input.lastIndexOf('.') + 1;
  if (nameStart === 0) return 'needs at least three dot-separated segments';
  let segmentStart = 0;
  let segments = 0;
  for (let i = 0; i < nameStart; i++) {
    const c = input.charCodeAt(i);
    if (c === 46) {
      const length = i - segmentStart;
      if (length === 0) return segmentStart === 0 ? 'starts with a dot' : `empty segment at position ${i}`;
      if (length > NSID_SEGMENT_MAX_LENGTH) {
        return `segment ${segments + 1} exceeds ${NSID_SEGMENT_MAX_LENGTH} characters (${length})`;
      }
      if (input.charCodeAt(segmentStart) === 45) return `segment ${segments + 1} starts with a hyphen`;
      if (input.charCodeAt(i - 1) === 45) return `segment ${segments + 1} ends with a hyphen`;
      segments++;
      segmentStart = i + 1;
    } else if (!isAsciiAlnum(c) && c !== 45) {
      return `${describeCharAt(input, i)} is not allowed in the domain authority`;
    }
  }
  if (segments < 2) return 'needs at least three dot-separated segments';
  if (!isAsciiLetter(input.charCodeAt(0))) return 'the first segment (top-level domain) must start with a letter';
  const nameLength = n - nameStart;
  if (nameLength === 0) return 'ends with a dot (the name segment is empty)';
  if (nameLength > NSID_SEGMENT_MAX_LENGTH) {
    return `name segment exceeds ${NSID_SEGMENT_MAX_LENGTH} characters (${nameLength})`;
  }
  if (!isAsciiLetter(input.charCodeAt(nameStart))) return 'name segment must start with a letter';
  for (let i = nameStart + 1; i < n; i++) {
    if (!isAsciiAlnum(input.charCodeAt(i))) {
      return `name segment: ${describeCharAt(input, i)} is not allowed (letters and digits only)`;
    }
  }
  return null;
}

export function isValidNsid(input: unknown): input is string {
  return findNsidProblem(input) === null;
}

export function assertValidNsid(input: unknown): asserts input is string {
  assertNoProblem('NSID', input, findNsidProblem(input));
}

export interface ParsedNsid {
  /** The domain that controls the NSID, in normal (not reversed) order: `feed.bsky.app`. */
  authority: string;
  /** The final segment, case preserved: `post`, `getProfile`. */
  name: string;
  segments: string[];
}

export function parseNsid(input: unknown): ParsedNsid {
  assertValidNsid(input);
  const segments = input.split('.');
  return {
    authority: segments.slice(0, -1).reverse().join('.'),
    name: segments[segments.length - 1]!,
    segments,
  };
}

/**
 * The authority part is a domain and so case-insensitive; the name is case-sensitive. The
 * normalized form lowercases the authority only.
 */
export function normalizeNsid(input: string): string {
  assertValidNsid(input);
  const dot = input.lastIndexOf('.');
  return input.slice(0, dot).toLowerCase() + input.slice(dot);
}
