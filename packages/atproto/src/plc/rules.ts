/**
 * The directory's rule engine: given what a DID's log holds and a proposed operation, accept it
 * (saying which operations it nullifies) or reject it with a PlcError naming the rule it breaks.
 * Pure apart from signature checks: the clock is a parameter, so the 72-hour window is testable.
 *
 * The rules (did:plc spec, "Key Rotation & Account Recovery"):
 * - The first operation must be a genesis operation (prev null) whose hash is the DID.
 * - Every later operation names in `prev` an operation of the valid (non-nullified) log and is
 *   signed by one of that operation's rotation keys.
 * - If `prev` is not the latest valid operation, the new one forks history and nullifies all the
 *   valid operations after `prev`. That is allowed only within 72 hours of the first operation it
 *   nullifies, and only when signed by a rotation key that comes earlier in `prev`'s rotationKeys
 *   (has higher priority) than the key that signed that first nullified operation.
 * - Nothing may follow a tombstone (though a tombstone may itself be nullified by a recovery).
 */
import { PlcError } from './errors.ts';
import {
  type AnyPlcOperation,
  cidForPlcOperation,
  didForGenesisOperation,
  findPlcSigner,
  type PlcDocumentData,
  plcDataForOperation,
  rotationKeysOf,
} from './operations.ts';

export const PLC_RECOVERY_WINDOW_MS = 72 * 60 * 60 * 1000;

/** One stored operation of a DID's log, in the order the directory accepted them. */
export interface PlcLogEntry {
  cid: string;
  operation: AnyPlcOperation;
  /** ISO 8601 time at which the directory accepted it. */
  createdAt: string;
  nullified: boolean;
}

export interface PlcAcceptance {
  /** CID of the accepted operation. */
  cid: string;
  /** The key (did:key) that signed it. */
  signer: string;
  /** CIDs of the valid operations this one nullifies (a recovery fork), oldest first. */
  nullifies: string[];
  /** The DID's state once the operation is applied; null when it is a tombstone. */
  data: PlcDocumentData | null;
}

/**
 * Decides whether `operation` (already shape-checked by parsePlcOperation) may be appended to the
 * log of `did`. Throws PlcError (MisorderedOperation, DidMismatch, InvalidSignature, LateRecovery,
 * Tombstoned) when not.
 */
export async function validateNextOperation(args: {
  did: string;
  log: readonly PlcLogEntry[];
  operation: AnyPlcOperation;
  now?: Date;
}): Promise<PlcAcceptance> {
  const { did, log, operation } = args;
  const now = (args.now ?? new Date()).getTime();
  const cid = cidForPlcOperation(operation);
  const valid = log.filter((entry) => !entry.nullified);

  if (log.some((entry) => entry.cid === cid)) {
    throw new PlcError('MisorderedOperation', `operation ${cid} is already in the log of ${did}`);
  }

  if (valid.length === 0) {
    if (operation.type === 'plc_tombstone' || operation.prev !== null) {
      throw new PlcError(
        'MisorderedOperation',
        `${did} is not registered: its first operation must be a genesis operation (prev null)`,
      );
    }
    const expected = didForGenesisOperation(operation);
    if (expected !== did) {
      throw new PlcError('DidMismatch', `genesis operation hashes to ${expected}, not ${did}`);
    }
    const keys = rotationKeysOf(operation);
    const signer = await findPlcSigner(operation, keys);
    if (!signer) {
      throw new PlcError('InvalidSignature', 'genesis operation is not signed by any of its own rotation keys');
    }
    return { cid, signer, nullifies: [], data: plcDataForOperation(did, operation) };
  }

  if (operation.type === 'create') {
    throw new PlcError('MisorderedOperation', 'a legacy create operation can only be a genesis operation');
  }
  if (operation.prev === null) {
    throw new PlcError('MisorderedOperation', `${did} already exists; an update must name its prev operation`);
  }
  const prevIndex = valid.findIndex((entry) => entry.cid === operation.prev);
  if (prevIndex < 0) {
    const nullified = log.some((entry) => entry.cid === operation.prev);
    throw new PlcError(
      'MisorderedOperation',
      nullified
        ? `prev ${operation.prev} was nullified; build on the current log of ${did}`
        : `prev ${operation.prev} is not an operation of ${did}`,
    );
  }
  const prev = valid[prevIndex] as PlcLogEntry;
  if (prev.operation.type === 'plc_tombstone') {
    throw new PlcError('Tombstoned', `${did} has been deactivated (tombstoned); no operation may follow`);
  }

  const keys = rotationKeysOf(prev.operation);
  const signer = await findPlcSigner(operation, keys);
  if (!signer) {
    throw new PlcError('InvalidSignature', `operation is not signed by any rotation key of its prev ${prev.cid}`);
  }

  const nullified = valid.slice(prevIndex + 1);
  const firstNullified = nullified[0];
  if (firstNullified) {
    // A fork: only a strictly higher-priority key than the one that signed the first operation
    // it throws away may do that, and only within the recovery window.
    const disputedSigner = await findPlcSigner(firstNullified.operation, keys);
    const disputedIndex = disputedSigner === undefined ? keys.length : keys.indexOf(disputedSigner);
    const signerIndex = keys.indexOf(signer);
    if (signerIndex >= disputedIndex) {
      throw new PlcError(
        'InvalidSignature',
        `operation forks ${did} at ${prev.cid} but is signed by rotationKeys[${signerIndex}], which has no priority ` +
          `over rotationKeys[${disputedIndex}] that signed ${firstNullified.cid}`,
      );
    }
    const age = now - Date.parse(firstNullified.createdAt);
    if (!(age <= PLC_RECOVERY_WINDOW_MS)) {
      throw new PlcError(
        'LateRecovery',
        `operation ${firstNullified.cid} is ${Math.floor(age / 3_600_000)} hours old; ` +
          'operations can only be nullified within 72 hours',
      );
    }
  }

  return {
    cid,
    signer,
    nullifies: nullified.map((entry) => entry.cid),
    data: plcDataForOperation(did, operation),
  };
}

/**
 * Checks a DID's valid operation chain (what GET /{did}/log serves) from its genesis: each
 * operation follows the previous one by CID and is signed by one of its rotation keys. Returns
 * the state the chain ends in (null when it ends in a tombstone).
 */
export async function verifyOperationChain(
  did: string,
  ops: readonly AnyPlcOperation[],
): Promise<PlcDocumentData | null> {
  if (ops.length === 0) throw new PlcError('MisorderedOperation', `the operation log of ${did} is empty`);
  const log: PlcLogEntry[] = [];
  let data: PlcDocumentData | null = null;
  for (const operation of ops) {
    const last = log.at(-1);
    if (last && operation.type !== 'create' && operation.prev !== last.cid) {
      throw new PlcError('MisorderedOperation', `operation after ${last.cid} does not name it as prev`);
    }
    // The time is irrelevant: a linear chain never forks, so the recovery window never applies.
    const accepted = await validateNextOperation({ did, log, operation });
    log.push({ cid: accepted.cid, operation, createdAt: new Date(0).toISOString(), nullified: false });
    data = accepted.data;
  }
  return data;
}

/**
 * Replays a full audit log (GET /{did}/log/audit) through the rules, at the times the directory
 * recorded, and checks that the directory's `nullified` flags are the ones the rules produce.
 * Returns the DID's current state (null when tombstoned).
 */
export async function verifyAuditLog(
  did: string,
  entries: readonly { cid: string; operation: AnyPlcOperation; createdAt: string; nullified: boolean }[],
): Promise<PlcDocumentData | null> {
  if (entries.length === 0) throw new PlcError('MisorderedOperation', `the audit log of ${did} is empty`);
  const log: PlcLogEntry[] = [];
  let data: PlcDocumentData | null = null;
  for (const entry of entries) {
    const accepted = await validateNextOperation({
      did,
      log,
      operation: entry.operation,
      now: new Date(entry.createdAt),
    });
    if (accepted.cid !== entry.cid) {
      throw new PlcError(
        'MisorderedOperation',
        `audit entry claims CID ${entry.cid} but its operation is ${accepted.cid}`,
      );
    }
    for (const item of log) if (accepted.nullifies.includes(item.cid)) item.nullified = true;
    log.push({ cid: entry.cid, operation: entry.operation, createdAt: entry.createdAt, nullified: false });
  }
  for (const [i, item] of log.entries()) {
    if (item.nullified !== entries[i]?.nullified) {
      throw new PlcError(
        'MisorderedOperation',
        `audit log marks ${item.cid} ${entries[i]?.nullified ? 'nullified' : 'valid'}, but the rules say otherwise`,
      );
    }
  }
  const last = log.filter((item) => !item.nullified).at(-1);
  if (last) data = plcDataForOperation(did, last.operation);
  return data;
}
