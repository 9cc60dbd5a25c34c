import { AtprotoError } from '../errors.ts';

/**
 * Every failure in the PLC code is a PlcError whose `code` says what kind of failure it was, so a
 * directory can map it to an HTTP status and a client can tell "retry later" from "fix your op":
 *
 * - `InvalidOperation`: the operation's shape, field values or size break the spec's rules.
 * - `InvalidSignature`: not signed by any of the rotation keys allowed to sign it, or (for a
 *   recovery fork) signed by a key without priority over the key that signed what it nullifies.
 * - `MisorderedOperation`: `prev` does not name an operation of this DID's (valid) log, or a
 *   genesis operation was sent for a DID that already exists.
 * - `LateRecovery`: a fork that would nullify an operation older than the 72-hour recovery window.
 * - `DidMismatch`: the genesis operation hashes to a different DID than the one it was sent for.
 * - `Tombstoned`: the DID has been deactivated; nothing can follow a tombstone.
 * - `NotFound`: the directory does not know the DID (client: HTTP 404 or 410).
 * - `Rejected`: the directory refused a submitted operation (client: HTTP 4xx).
 * - `Unavailable`: the directory could not be reached or failed (network error, HTTP 5xx, bad body).
 */
export type PlcErrorCode =
  | 'InvalidOperation'
  | 'InvalidSignature'
  | 'MisorderedOperation'
  | 'LateRecovery'
  | 'DidMismatch'
  | 'Tombstoned'
  | 'NotFound'
  | 'Rejected'
  | 'Unavailable';

export class PlcError extends AtprotoError {
  declare readonly code: PlcErrorCode;
  /** The HTTP status the directory answered with, when the error came from one. */
  readonly status: number | undefined;
  constructor(code: PlcErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(code, message, options);
    this.status = options?.status;
  }
}
