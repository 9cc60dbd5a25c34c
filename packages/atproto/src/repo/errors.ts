/**
 * The one error class of the repository engine. Each failure kind has its own code so callers
 * (the PDS's importRepo, the migration engine) can map it to a precise message or XRPC error.
 */
import { AtprotoError } from '../errors.ts';

export type RepoErrorCode =
  // CAR framing (wrapping the CAR reader's own codes)
  | 'TruncatedCar'
  | 'InvalidCar'
  | 'BadBlockHash'
  | 'BlockTooLarge'
  // structure
  | 'WrongRoot' // the CAR's root is missing or is not a commit
  | 'InvalidCommit' // the commit block does not have the v3 shape
  | 'BadSignature'
  | 'WrongDid'
  | 'MissingNode'
  | 'MissingRecord'
  | 'InvalidNode'
  | 'InvalidKey'
  | 'UnsortedKeys'
  | 'WrongLayer' // a key sits at a layer its hash does not give it
  | 'NonCanonicalCbor'
  | 'TooManyRecords'
  // writes
  | 'TooManyWrites'
  | 'InvalidWrite'
  | 'DuplicateWrite'
  | 'RecordExists'
  | 'RecordNotFound'
  | 'MissingBlock'
  | 'StaleRev';

export class RepoError extends AtprotoError {
  declare readonly code: RepoErrorCode;
  constructor(code: RepoErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
