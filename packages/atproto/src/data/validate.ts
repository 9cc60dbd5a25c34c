/**
 * The atproto data-model rules that go beyond "is it encodable" (https://atproto.com/specs/data-model):
 * a value stored as a record or sent as an object is a map at the top level; `$type`, when present,
 * is a non-empty string; a `$type: "blob"` map is a well-formed blob reference; `$link` and `$bytes`
 * maps are exactly a CID link / a byte string; numbers are integers (no floats).
 */
import { BytesWrapper } from '@atcute/cbor';
import { CidLinkWrapper } from '@atcute/cid';
import { fromBase64 } from '@atcute/multibase';
import { parseCid } from '../cid.ts';
import { MAX_DEPTH } from './cbor.ts';
import { DataModelError, describeValue } from './error.ts';
import type { BlobRef, Bytes, CidLink, DataObject } from './types.ts';

/** True for a CID link in memory: a CidLinkWrapper, or `{ $link: <valid CID string> }` and nothing else. */
export function isCidLinkValue(value: unknown): value is CidLink {
  if (value instanceof CidLinkWrapper) return true;
  if (!isPlainObject(value) || typeof value.$link !== 'string') return false;
  if (!hasOnlyKey(value, '$link')) return false;
  try {
    parseCid(value.$link);
    return true;
  } catch {
    return false;
  }
}

/** True for a byte string in memory: a BytesWrapper, or `{ $bytes: <unpadded base64> }` and nothing else. */
export function isBytesValue(value: unknown): value is Bytes {
  if (value instanceof BytesWrapper) return true;
  if (!isPlainObject(value) || typeof value.$bytes !== 'string') return false;
  if (!hasOnlyKey(value, '$bytes')) return false;
  try {
    fromBase64(value.$bytes);
    return true;
  } catch {
    return false;
  }
}

/** True for a well-formed typed blob reference (`$type: "blob"`, ref, mimeType, size). */
export function isBlobRef(value: unknown): value is BlobRef {
  return isPlainObject(value) && value.$type === 'blob' && blobProblem(value) === undefined;
}

/** Throws DataModelError (naming the path and the rule) unless `value` is a valid data-model object. */
export function assertValidData(value: unknown): asserts value is DataObject {
  if (!isPlainObject(value) || isCidLinkValue(value) || isBytesValue(value)) {
    throw new DataModelError('InvalidData', `at $: top-level value must be an object, got ${describeValue(value)}`);
  }
  check(value, 0, '$');
}

/** Like assertValidData, and the top-level object must have a non-empty string `$type` (a record). */
export function assertValidRecord(value: unknown): asserts value is DataObject & { $type: string } {
  assertValidData(value);
  if (typeof value.$type !== 'string') {
    throw new DataModelError(
      'InvalidData',
      `at $.$type: a record must have a string $type, got ${describeValue(value.$type)}`,
    );
  }
}

/** True when assertValidData would accept `value`. */
export function isValidData(value: unknown): value is DataObject {
  try {
    assertValidData(value);
    return true;
  } catch (err) {
    if (err instanceof DataModelError) return false;
    throw err;
  }
}

function check(value: unknown, depth: number, path: string): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isSafeInteger(value)) {
        fail(path, `${describeValue(value)} is not a safe integer (floats are not allowed in the data model)`);
      }
      return;
    case 'object': {
      if (value === null) return;
      if (depth >= MAX_DEPTH) fail(path, `nesting deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) fail(`${path}[${i}]`, 'undefined is not allowed in arrays');
          check(value[i], depth + 1, `${path}[${i}]`);
        }
        return;
      }
      if (value instanceof CidLinkWrapper || value instanceof BytesWrapper) return;
      if (!isPlainObject(value)) fail(path, 'not a plain object');
      if ('$link' in value) {
        if (!isCidLinkValue(value)) fail(path, '$link must be the only key and a valid CID string');
        return;
      }
      if ('$bytes' in value) {
        if (!isBytesValue(value)) fail(path, '$bytes must be the only key and unpadded standard base64');
        return;
      }
      if (value.$type !== undefined) {
        if (typeof value.$type !== 'string' || value.$type.length === 0) {
          fail(`${path}.$type`, `$type must be a non-empty string, got ${describeValue(value.$type)}`);
        }
        if (value.$type === 'blob') {
          const problem = blobProblem(value);
          if (problem) fail(path, `invalid blob: ${problem}`);
        }
      }
      for (const key in value) {
        const item = value[key];
        if (item !== undefined) check(item, depth + 1, `${path}.${key}`);
      }
      return;
    }
    default:
      fail(path, `${typeof value} is not a data-model value`);
  }
}

function blobProblem(value: Record<string, unknown>): string | undefined {
  if (!isCidLinkValue(value.ref)) return `ref must be a CID link, got ${describeValue(value.ref)}`;
  if (typeof value.mimeType !== 'string') return `mimeType must be a string, got ${describeValue(value.mimeType)}`;
  if (!Number.isSafeInteger(value.size) || (value.size as number) < 0) {
    return `size must be a non-negative integer, got ${describeValue(value.size)}`;
  }
  return undefined;
}

function fail(path: string, message: string): never {
  throw new DataModelError('InvalidData', `at ${path}: ${message}`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function hasOnlyKey(value: Record<string, unknown>, only: string): boolean {
  for (const key in value) if (key !== only && value[key] !== undefined) return false;
  return true;
}
