/**
 * The embedded did:plc directory, in-process: submit operations (validated by the shared rule
 * engine, @portage/atproto/plc/rules) and read back documents, logs and the export. The HTTP
 * server (server.ts) is a thin layer over this class, and the PDS can call it directly.
 *
 * Submissions for one DID are serialized (validation awaits signature checks, and two forks
 * racing must not both be judged against the same log); the write itself re-checks that the log
 * did not change underneath, so even a second process on the same database cannot interleave.
 */
import type { PlcAuditEntry } from '@portage/atproto/plc/client';
import { type PlcDidDocument, plcDataToDidDocument } from '@portage/atproto/plc/document';
import { PlcError } from '@portage/atproto/plc/errors';
import {
  type AnyPlcOperation,
  isPlcDid,
  type PlcDocumentData,
  parsePlcOperation,
  plcDataForOperation,
} from '@portage/atproto/plc/operations';
import { validateNextOperation } from '@portage/atproto/plc/rules';
import { PlcStore } from './store.ts';

export const DEFAULT_EXPORT_COUNT = 10;
export const MAX_EXPORT_COUNT = 1000;

export type PlcResolution =
  | { status: 'unknown' }
  | { status: 'tombstoned'; last: PlcAuditEntry }
  | { status: 'active'; data: PlcDocumentData; last: PlcAuditEntry };

export interface PlcDirectoryOptions {
  /** Folder holding the directory's SQLite database; ':memory:' for a throwaway one. */
  dataDirectory: string;
  /** The clock used to stamp operations (tests move it to exercise the recovery window). */
  now?: () => Date;
}

export class PlcDirectory {
  readonly store: PlcStore;
  readonly #now: () => Date;
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(opts: PlcDirectoryOptions) {
    this.store = new PlcStore(opts.dataDirectory);
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Validates and stores an operation (parsed JSON) for `did`. Resolves with the stored entry;
   * rejects with a PlcError naming the broken rule, and then nothing was stored.
   */
  submit(did: string, input: unknown): Promise<PlcAuditEntry> {
    const previous = this.#queues.get(did) ?? Promise.resolve();
    const result = previous.then(
      () => this.#submitNow(did, input),
      () => this.#submitNow(did, input),
    );
    const tail = result.catch(() => undefined);
    this.#queues.set(did, tail);
    void tail.then(() => {
      if (this.#queues.get(did) === tail) this.#queues.delete(did);
    });
    return result;
  }

  async #submitNow(did: string, input: unknown): Promise<PlcAuditEntry> {
    if (!isPlcDid(did)) throw new PlcError('InvalidOperation', `not a valid did:plc: ${String(did).slice(0, 64)}`);
    const operation = parsePlcOperation(input);
    for (let attempt = 0; attempt < 5; attempt++) {
      const log = this.store.entriesFor(did);
      const expectedLastSeq = log.at(-1)?.seq ?? 0;
      const now = this.#now();
      const accepted = await validateNextOperation({ did, log, operation, now });
      const stored = this.store.append({
        did,
        cid: accepted.cid,
        operation,
        nullifies: accepted.nullifies,
        expectedLastSeq,
        now,
      });
      if (stored) return withoutSeq(stored);
    }
    throw new PlcError('Unavailable', `the log of ${did} kept changing during validation; retry`);
  }

  /** What the directory knows of the DID: unknown, tombstoned, or its current state. */
  resolve(did: string): PlcResolution {
    const last = this.store
      .entriesFor(did)
      .filter((e) => !e.nullified)
      .at(-1);
    if (!last) return { status: 'unknown' };
    const data = plcDataForOperation(did, last.operation);
    if (!data) return { status: 'tombstoned', last: withoutSeq(last) };
    return { status: 'active', data, last: withoutSeq(last) };
  }

  /** The DID document, or undefined for an unknown or tombstoned DID (see resolve()). */
  getDocument(did: string): PlcDidDocument | undefined {
    const state = this.resolve(did);
    return state.status === 'active' ? plcDataToDidDocument(did, state.data) : undefined;
  }

  /** The valid (non-nullified) operations, oldest first; empty for an unknown DID. */
  getOperationLog(did: string): AnyPlcOperation[] {
    return this.store
      .entriesFor(did)
      .filter((e) => !e.nullified)
      .map((e) => e.operation);
  }

  /** Every operation ever accepted for the DID, nullified ones included. */
  getAuditLog(did: string): PlcAuditEntry[] {
    return this.store.entriesFor(did).map(withoutSeq);
  }

  /** Entries of all DIDs accepted strictly after `after` (ISO time; default: from the start). */
  export(opts: { after?: string; count?: number } = {}): PlcAuditEntry[] {
    const count = Math.min(Math.max(opts.count ?? DEFAULT_EXPORT_COUNT, 1), MAX_EXPORT_COUNT);
    let after = '';
    if (opts.after !== undefined) {
      const time = Date.parse(opts.after);
      if (Number.isNaN(time)) throw new PlcError('InvalidOperation', `after is not a timestamp: ${opts.after}`);
      after = new Date(time).toISOString();
    }
    return this.store.exportAfter(after, count).map(withoutSeq);
  }

  close(): void {
    this.store.close();
  }
}

function withoutSeq(entry: PlcAuditEntry & { seq?: number }): PlcAuditEntry {
  return {
    did: entry.did,
    operation: entry.operation,
    cid: entry.cid,
    nullified: entry.nullified,
    createdAt: entry.createdAt,
  };
}
