/**
 * AT-URIs in the restricted form Lexicon `at-uri` fields and the repository use
 * (https://atproto.com/specs/at-uri-scheme): `at://<did-or-handle>[/<nsid>[/<rkey>]]`, at most
 * 8192 characters, no trailing slash, no query, no fragment. The general URI grammar allows
 * more; nothing in atproto produces it, and accepting it would let two spellings name one record.
 */
import { findAtIdentifierProblem, looksLikeDid } from './at-identifier.ts';
import { assertNoProblem } from './errors.ts';
import { findNsidProblem } from './nsid.ts';
import { findRecordKeyProblem } from './record-key.ts';

export const AT_URI_MAX_LENGTH = 8192;
const PREFIX = 'at://';

export interface ParsedAtUri {
  /** The DID or handle, as written (handles are not lowercased here; see normalizeHandle). */
  authority: string;
  authorityKind: 'did' | 'handle';
  collection?: string;
  rkey?: string;
}

/** Splits and checks in one pass; `out` receives the parts when the URI is valid. */
function check(input: unknown, out: ParsedAtUri | null): string | null {
  if (typeof input !== 'string') return 'not a string';
  if (input.length > AT_URI_MAX_LENGTH) return `longer than ${AT_URI_MAX_LENGTH} characters (${input.length})`;
  if (!input.startsWith(PREFIX)) return 'must start with "at://"';
  const q = input.indexOf('?');
  if (q !== -1) return `query ("?" at position ${q}) is not allowed`;
  const h = input.indexOf('#');
  if (h !== -1) return `fragment ("#" at position ${h}) is not allowed`;
  const rest = input.slice(PREFIX.length);
  const parts = rest.split('/');
  if (parts.length > 3) return 'too many path segments (at most /<collection>/<rkey>)';
  const [authority, collection, rkey] = parts as [string, string | undefined, string | undefined];
  if (authority.length === 0) return 'authority (DID or handle) is empty';
  const authorityProblem = findAtIdentifierProblem(authority);
  if (authorityProblem !== null) return `authority ${authorityProblem}`;
  if (collection !== undefined) {
    if (collection.length === 0) return rkey === undefined ? 'trailing slash is not allowed' : 'empty collection';
    const problem = findNsidProblem(collection);
    if (problem !== null) return `collection is not a valid NSID: ${problem}`;
  }
  if (rkey !== undefined) {
    if (rkey.length === 0) return 'trailing slash is not allowed';
    const problem = findRecordKeyProblem(rkey);
    if (problem !== null) return `record key: ${problem}`;
  }
  if (out !== null) {
    out.authority = authority;
    out.authorityKind = looksLikeDid(authority) ? 'did' : 'handle';
    if (collection !== undefined) out.collection = collection;
    if (rkey !== undefined) out.rkey = rkey;
  }
  return null;
}

export function findAtUriProblem(input: unknown): string | null {
  return check(input, null);
}

export function isValidAtUri(input: unknown): input is string {
  return check(input, null) === null;
}

export function assertValidAtUri(input: unknown): asserts input is string {
  assertNoProblem('AT-URI', input, check(input, null));
}

export function parseAtUri(input: unknown): ParsedAtUri {
  const out: ParsedAtUri = { authority: '', authorityKind: 'did' };
  assertNoProblem('AT-URI', input, check(input, out));
  return out;
}

/** Builds `at://authority[/collection[/rkey]]`, validating the result. */
export function formatAtUri(parts: { authority: string; collection?: string; rkey?: string }): string {
  if (parts.rkey !== undefined && parts.collection === undefined) {
    assertNoProblem('AT-URI', `at://${parts.authority}//${parts.rkey}`, 'a record key needs a collection');
  }
  let uri = PREFIX + parts.authority;
  if (parts.collection !== undefined) uri += `/${parts.collection}`;
  if (parts.rkey !== undefined) uri += `/${parts.rkey}`;
  assertValidAtUri(uri);
  return uri;
}
