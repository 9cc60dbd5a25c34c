/**
 * Where a restore's first PLC operation attaches to a DID's log. The user's recovery key may sign
 * an operation after any operation whose rotation keys list it. Normally that is the latest one.
 * When a later operation dropped the key (the old server's key moved the DID elsewhere), the
 * restore builds on the last operation that still lists it, and the directory then nullifies
 * everything after it: allowed only if the user's key comes earlier in that operation's rotation
 * keys than the key that signed the first operation undone, and only within 72 hours of it
 * (did:plc spec, "Key Rotation & Account Recovery"). Every refusal here happens before anything
 * is changed, and says why in a sentence. Pure apart from signature checks; the clock is a parameter.
 */
import type { PlcAuditEntry } from '@portage/atproto/plc/client';
import {
  findPlcSigner,
  normalizePlcOperation,
  type PlcOperation,
  rotationKeysOf,
} from '@portage/atproto/plc/operations';
import { PLC_RECOVERY_WINDOW_MS } from '@portage/atproto/plc/rules';
import { MigrationError } from '../errors.ts';

export interface IdentityPlan {
  /** The operation the next one names as `prev`. */
  prev: PlcAuditEntry & { operation: PlcOperation };
  /** Valid operations after `prev` that the next operation nullifies, oldest first. */
  overrides: PlcAuditEntry[];
  /** The key that signed the first overridden operation. */
  overriddenSigner?: string;
}

export async function planIdentity(args: {
  did: string;
  log: readonly PlcAuditEntry[];
  /** The user's rotation key, as a did:key. */
  key: string;
  keyFile: string;
  now: Date;
}): Promise<IdentityPlan> {
  const { did, key, keyFile } = args;
  const valid = args.log.filter((entry) => !entry.nullified);
  if (valid.length === 0) {
    throw new MigrationError('DidNotFound', `the PLC directory has no operations for ${did}`, {
      kind: 'need-input',
      field: 'plcUrl',
      reason: 'not-found',
      nothingChanged: true,
    });
  }
  let anchor = -1;
  for (let i = valid.length - 1; i >= 0; i--) {
    const op = valid[i]!.operation;
    if (op.type !== 'plc_tombstone' && rotationKeysOf(op).includes(key)) {
      anchor = i;
      break;
    }
  }
  if (anchor < 0) {
    throw new MigrationError(
      'KeyNotRotationKey',
      `the key in ${keyFile} (${key}) is not one of the rotation keys of ${did}, now or before`,
      { kind: 'need-input', field: 'recoveryKey', reason: 'mismatch', nothingChanged: true },
    );
  }
  const prevEntry = valid[anchor]!;
  const prev = { ...prevEntry, operation: normalizePlcOperation(prevEntry.operation as PlcOperation) };
  const overrides = valid.slice(anchor + 1);
  const first = overrides[0];
  if (!first) return { prev, overrides };

  const keys = rotationKeysOf(prevEntry.operation);
  const signer = await findPlcSigner(first.operation, keys);
  const signerIndex = signer === undefined ? keys.length : keys.indexOf(signer);
  const made = `${first.createdAt} (operation ${first.cid})`;
  if (keys.indexOf(key) >= signerIndex) {
    throw new MigrationError(
      'KeyOutranked',
      `${did} was changed on ${made} by the rotation key ${signer ?? 'unknown'}, which ranks above or equal to your key ${key}, and that change removed your key`,
      'Only a key listed before the one that made the change can undo it; this key cannot take the DID back. Nothing was changed.',
    );
  }
  const age = args.now.getTime() - Date.parse(first.createdAt);
  if (!(age <= PLC_RECOVERY_WINDOW_MS)) {
    throw new MigrationError(
      'RecoveryWindowPassed',
      `${did} was moved away from your key on ${made}, ${Math.floor(age / 3_600_000)} hours ago; the PLC directory lets a higher rotation key override an operation only within 72 hours of it, so it can no longer be undone`,
      'This key can no longer take the DID back; the account must be recreated under a new DID. Nothing was changed.',
    );
  }
  return { prev, overrides, ...(signer ? { overriddenSigner: signer } : {}) };
}
