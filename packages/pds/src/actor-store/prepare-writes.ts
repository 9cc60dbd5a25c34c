/**
 * Turns write requests (createRecord, putRecord, deleteRecord, applyWrites) into checked,
 * encoded writes the repository engine can apply: syntax of collection and rkey, lexicon
 * validation (`validate` true / false / unset, as the reference), `$type`, size limits, DAG-CBOR
 * encoding and CID, and the blobs each record references. All of it happens before any storage
 * is touched, so a bad write in a batch rejects the whole batch and changes nothing.
 */
import { collectBlobs } from '@atcute/lexicons/interfaces';
import { safeParse } from '@atcute/lexicons/validations';
import { type Cid, cidForCbor, parseCid } from '@portage/atproto/cid';
import { encodeRecord, jsonToData } from '@portage/atproto/data/index';
import { AtprotoError } from '@portage/atproto/errors';
import { findNsidProblem } from '@portage/atproto/syntax/nsid';
import { findRecordKeyProblem } from '@portage/atproto/syntax/record-key';
import { nextTid } from '@portage/atproto/tid';
import { recordSchemaFor } from './record-schemas.ts';

/** Records are at most 1 MB of DAG-CBOR (the firehose and the reference's limit). */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** At most 200 writes per commit, as the lexicon of applyWrites and the firehose allow. */
export const MAX_WRITES_PER_COMMIT = 200;

/** A write request was malformed or does not match its lexicon. `code` is the XRPC error name. */
export class WriteRequestError extends AtprotoError {}

export type ValidationStatus = 'valid' | 'unknown';

export type WriteRequest =
  | { action: 'create'; collection: string; rkey?: string; record: unknown; validate?: boolean }
  | {
      action: 'update';
      collection: string;
      rkey: string;
      record: unknown;
      validate?: boolean;
      swapRecord?: string | null;
    }
  | { action: 'delete'; collection: string; rkey: string; swapRecord?: string | null };

export interface BlobReference {
  cid: string;
  mimeType: string;
  size: number;
}

export interface PreparedRecordWrite {
  action: 'create' | 'update';
  collection: string;
  rkey: string;
  /** `<collection>/<rkey>`, the key in the MST. */
  path: string;
  cid: Cid;
  bytes: Uint8Array;
  blobs: BlobReference[];
  validationStatus: ValidationStatus | undefined;
  /** undefined: no check; null: the record must not exist; a CID: the current record must be it. */
  swapCid: Cid | null | undefined;
}

export interface PreparedDelete {
  action: 'delete';
  collection: string;
  rkey: string;
  path: string;
  swapCid: Cid | undefined;
}

export type PreparedWrite = PreparedRecordWrite | PreparedDelete;

function invalid(message: string): WriteRequestError {
  return new WriteRequestError('InvalidRequest', message);
}

export function assertCollection(collection: unknown): asserts collection is string {
  const problem = findNsidProblem(collection);
  if (problem) throw invalid(`collection must be a valid NSID: ${problem}`);
}

export function assertRecordKey(rkey: unknown): asserts rkey is string {
  const problem = findRecordKeyProblem(rkey);
  if (problem) throw invalid(`invalid record key ${JSON.stringify(String(rkey).slice(0, 80))}: ${problem}`);
}

function parseSwap(swap: string | null | undefined, what: string): Cid | null | undefined {
  if (swap === undefined || swap === null) return swap;
  try {
    return parseCid(swap);
  } catch {
    throw invalid(`${what} is not a valid CID: ${JSON.stringify(String(swap).slice(0, 80))}`);
  }
}

function describeIssues(collection: string, message: string): string {
  return `Invalid ${collection} record: ${message}`;
}

function prepareRecord(
  action: 'create' | 'update',
  collection: string,
  rkey: string,
  record: unknown,
  validate: boolean | undefined,
  swapCid: Cid | null | undefined,
): PreparedRecordWrite {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw invalid('record must be an object');
  }
  let value = record as Record<string, unknown>;
  if (value.$type === undefined && validate !== false) value = { ...value, $type: collection };
  if (typeof value.$type !== 'string') throw invalid(`Invalid ${collection} record: $type must be a string`);
  if (value.$type !== collection) {
    throw invalid(`Invalid $type: expected ${collection}, got ${value.$type}`);
  }

  let validationStatus: ValidationStatus | undefined;
  if (validate !== false) {
    const schema = recordSchemaFor(collection);
    if (!schema) {
      if (validate === true) throw invalid(`Lexicon not found: lex:${collection}`);
      validationStatus = 'unknown';
    } else {
      const keyCheck = safeParse(schema.key, rkey);
      if (!keyCheck.ok) throw invalid(`Invalid record key for ${collection}: ${keyCheck.message}`);
      const result = safeParse(schema, value);
      if (!result.ok) throw invalid(describeIssues(collection, result.message));
      validationStatus = 'valid';
    }
  }

  let bytes: Uint8Array;
  try {
    bytes = encodeRecord(jsonToData(value));
  } catch (err) {
    throw invalid(`Invalid ${collection} record: ${(err as Error).message}`);
  }
  if (bytes.length > MAX_RECORD_BYTES) {
    throw invalid(`record is too large: ${bytes.length} bytes of DAG-CBOR, the limit is ${MAX_RECORD_BYTES}`);
  }
  const blobs = collectBlobs(value).map((b) => ({ cid: b.cid, mimeType: b.mimeType, size: b.size }));
  for (const blob of blobs) parseSwap(blob.cid, 'blob reference');
  return {
    action,
    collection,
    rkey,
    path: `${collection}/${rkey}`,
    cid: cidForCbor(bytes),
    bytes,
    blobs,
    validationStatus,
    swapCid,
  };
}

/** Checks and encodes one write. Throws WriteRequestError (code = XRPC error name) on bad input. */
export function prepareWrite(write: WriteRequest): PreparedWrite {
  assertCollection(write.collection);
  if (write.action === 'delete') {
    assertRecordKey(write.rkey);
    return {
      action: 'delete',
      collection: write.collection,
      rkey: write.rkey,
      path: `${write.collection}/${write.rkey}`,
      swapCid: parseSwap(write.swapRecord, 'swapRecord') ?? undefined,
    };
  }
  const rkey = write.action === 'create' ? (write.rkey ?? nextTid()) : write.rkey;
  assertRecordKey(rkey);
  if (write.validate !== undefined && typeof write.validate !== 'boolean') throw invalid('validate must be a boolean');
  const swap = write.action === 'update' ? parseSwap(write.swapRecord, 'swapRecord') : null;
  return prepareRecord(write.action, write.collection, rkey, write.record, write.validate, swap);
}

/** Checks a whole batch: size limit, each write, and no two writes to the same record. */
export function prepareWrites(writes: WriteRequest[]): PreparedWrite[] {
  if (writes.length > MAX_WRITES_PER_COMMIT) {
    throw invalid(`Too many writes: ${writes.length}, at most ${MAX_WRITES_PER_COMMIT} per request`);
  }
  const prepared = writes.map(prepareWrite);
  const seen = new Set<string>();
  for (const w of prepared) {
    if (seen.has(w.path)) throw invalid(`more than one write to ${w.path} in one request`);
    seen.add(w.path);
  }
  return prepared;
}
