/**
 * The JSON form of the data model, used by XRPC bodies and the CLI: CID links are `{"$link": "<cid>"}`,
 * byte strings `{"$bytes": "<base64, no padding>"}`, blobs `{"$type": "blob", "ref": {"$link": ...},
 * "mimeType": ..., "size": ...}`. Legacy blobs (`{"cid": "<cid>", "mimeType": ...}`, from before
 * blob refs were typed) are kept as they are, because a stored record's CID depends on its exact
 * content; blob.ts recognizes them when reading.
 */
import { BytesWrapper } from '@atcute/cbor';
import { CidLinkWrapper } from '@atcute/cid';
import { fromBase64, toBase64 } from '@atcute/multibase';
import { parseCid } from '../cid.ts';
import { MAX_DEPTH } from './cbor.ts';
import { DataModelError, describeValue } from './error.ts';
import type { DataObject, DataValue } from './types.ts';
import { assertValidData, isPlainObject } from './validate.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Converts a parsed JSON value into the in-memory data model (links and bytes become wrappers) and
 * checks the data-model rules. Throws DataModelError naming the path and the rule broken.
 */
export function jsonToData(json: unknown): DataObject {
  if (!isPlainObject(json)) {
    throw new DataModelError('InvalidData', `at $: top-level value must be an object, got ${describeValue(json)}`);
  }
  const value = convert(json, 0, '$');
  assertValidData(value);
  return value as DataObject;
}

/** Parses JSON text in the data-model JSON form. */
export function parseDataJson(text: string): DataObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DataModelError('InvalidData', `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return jsonToData(json);
}

/** The JSON form of an in-memory data-model value (plain objects only, ready for JSON.stringify). */
export function dataToJson(value: DataValue): JsonValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(dataToJson);
  if (value instanceof CidLinkWrapper) return { $link: value.$link };
  if (value instanceof BytesWrapper) return { $bytes: toBase64(value.buf) };
  const out: { [key: string]: JsonValue } = {};
  for (const key in value) {
    const item = (value as DataObject)[key];
    if (item !== undefined) out[key] = dataToJson(item);
  }
  return out;
}

function convert(value: unknown, depth: number, path: string): DataValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isSafeInteger(value)) {
        fail(path, `${describeValue(value)} is not a safe integer (floats are not allowed in the data model)`);
      }
      return value;
    case 'object': {
      if (value === null) return null;
      if (depth >= MAX_DEPTH) fail(path, `nesting deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(value)) return value.map((item, i) => convert(item, depth + 1, `${path}[${i}]`));
      // Already in memory form (e.g. a blob ref built with makeBlobRef inside a JSON body).
      if (value instanceof CidLinkWrapper || value instanceof BytesWrapper) return value;
      if (!isPlainObject(value)) fail(path, 'not a JSON object');
      if ('$link' in value) return convertLink(value, path);
      if ('$bytes' in value) return convertBytes(value, path);
      const out: DataObject = {};
      for (const key in value) {
        const item = value[key];
        if (item === undefined) continue;
        const converted = convert(item, depth + 1, `${path}.${key}`);
        if (key === '__proto__') {
          Object.defineProperty(out, key, { value: converted, enumerable: true, configurable: true, writable: true });
        } else {
          out[key] = converted;
        }
      }
      return out;
    }
    default:
      return fail(path, `${typeof value} is not a JSON value`);
  }
}

function convertLink(value: Record<string, unknown>, path: string): CidLinkWrapper {
  if (Object.keys(value).length !== 1) fail(path, '$link object must have no other keys');
  const link = value.$link;
  if (typeof link !== 'string') fail(`${path}.$link`, `$link must be a CID string, got ${describeValue(link)}`);
  try {
    return new CidLinkWrapper(parseCid(link).bytes);
  } catch {
    return fail(`${path}.$link`, `not a valid CID: ${describeValue(link)}`);
  }
}

function convertBytes(value: Record<string, unknown>, path: string): BytesWrapper {
  if (Object.keys(value).length !== 1) fail(path, '$bytes object must have no other keys');
  const text = value.$bytes;
  if (typeof text !== 'string') fail(`${path}.$bytes`, `$bytes must be a base64 string, got ${describeValue(text)}`);
  try {
    // The canonical form has no padding; tolerate it on input, as other implementations do.
    return new BytesWrapper(fromBase64(text.replace(/={1,2}$/, '')));
  } catch {
    return fail(`${path}.$bytes`, 'not valid base64');
  }
}

function fail(path: string, message: string): never {
  throw new DataModelError('InvalidData', `at ${path}: ${message}`);
}
