/**
 * Records as stored in repositories: a data-model object with a `$type`, kept as canonical DAG-CBOR
 * and addressed by the CID of those bytes.
 */
import { type Cid, cidForCbor } from '../cid.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import type { DataObject } from './types.ts';
import { assertValidRecord } from './validate.ts';

export type RecordValue = DataObject & { $type: string };

/** Canonical DAG-CBOR bytes of a record; throws DataModelError if it breaks the data-model rules. */
export function encodeRecord(record: unknown): Uint8Array {
  assertValidRecord(record);
  return encodeCbor(record);
}

/** Decodes and checks a stored record's bytes; throws DataModelError naming the problem. */
export function decodeRecord(bytes: Uint8Array): RecordValue {
  const value = decodeCbor(bytes);
  assertValidRecord(value);
  return value;
}

/** The record's bytes and their CID, which is what a repository stores. */
export function recordBlock(record: unknown): { cid: Cid; bytes: Uint8Array } {
  const bytes = encodeRecord(record);
  return { cid: cidForCbor(bytes), bytes };
}

/** The CID a record gets in a repository. */
export function cidForRecord(record: unknown): Cid {
  return recordBlock(record).cid;
}
