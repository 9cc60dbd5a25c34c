/**
 * Blob references inside records. The PDS links each blob to the records that reference it (a blob
 * no record references is garbage), so it needs every reference in a record, however deeply nested.
 */
import { BytesWrapper } from '@atcute/cbor';
import { CidLinkWrapper } from '@atcute/cid';
import { type Cid, formatCid, parseCid } from '../cid.ts';
import { checkCbor, decodeCbor } from './cbor.ts';
import { DataModelError } from './error.ts';
import type { BlobRef, DataValue } from './types.ts';
import { isBlobRef, isPlainObject } from './validate.ts';

export interface FoundBlobRef {
  /** The blob's CID as a string (raw codec for every blob uploaded through a PDS). */
  cid: string;
  mimeType: string;
  /** Size in bytes; null for legacy `{cid, mimeType}` references, which did not record it. */
  size: number | null;
}

/** A typed blob reference for a record. */
export function makeBlobRef(cid: Cid | string, mimeType: string, size: number): BlobRef {
  const parsed = typeof cid === 'string' ? parseCid(cid) : cid;
  if (typeof mimeType !== 'string' || mimeType.length === 0) {
    throw new DataModelError('InvalidData', 'blob mimeType must be a non-empty string');
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new DataModelError('InvalidData', `blob size must be a non-negative integer, got ${size}`);
  }
  return { $type: 'blob', ref: new CidLinkWrapper(parsed.bytes), mimeType, size };
}

/**
 * Reads a blob reference, typed (`{$type: "blob", ref, mimeType, size}`) or legacy
 * (`{cid: "<cid string>", mimeType}`, exactly those two keys); null when `value` is neither.
 */
export function readBlobRef(value: unknown): FoundBlobRef | null {
  if (!isPlainObject(value)) return null;
  if (value.$type === 'blob') {
    if (!isBlobRef(value)) return null;
    return { cid: value.ref.$link, mimeType: value.mimeType, size: value.size };
  }
  if (typeof value.cid === 'string' && typeof value.mimeType === 'string' && Object.keys(value).length === 2) {
    try {
      return { cid: formatCid(parseCid(value.cid)), mimeType: value.mimeType, size: null };
    } catch {
      return null;
    }
  }
  return null;
}

// Both kinds of blob reference have a mimeType: a value without that map key references no blob.
const MIME_TYPE_KEY = new TextEncoder().encode('mimeType');

/**
 * Checks that `bytes` is one canonical DAG-CBOR value (throwing decodeCbor's DataModelError when it
 * is not) and returns the blobs it references, as findBlobRefs of the decoded value would. Only a
 * value with a `mimeType` key somewhere is decoded; the rest are checked without building them.
 */
export function findBlobRefsInCbor(bytes: Uint8Array): FoundBlobRef[] {
  return checkCbor(bytes, MIME_TYPE_KEY) ? findBlobRefs(decodeCbor(bytes)) : [];
}

/** Every blob a value references (typed and legacy), each CID once (first occurrence, in the value's key order). */
export function findBlobRefs(value: DataValue | undefined): FoundBlobRef[] {
  const found = new Map<string, FoundBlobRef>();
  walk(value, found);
  return [...found.values()];
}

function walk(value: unknown, found: Map<string, FoundBlobRef>): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (const item of value) walk(item, found);
    return;
  }
  if (value instanceof CidLinkWrapper || value instanceof BytesWrapper) return;
  const blob = readBlobRef(value);
  if (blob) {
    if (!found.has(blob.cid)) found.set(blob.cid, blob);
    return;
  }
  for (const key in value) walk((value as Record<string, unknown>)[key], found);
}
