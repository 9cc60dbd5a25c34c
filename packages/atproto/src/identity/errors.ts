import { AtprotoError } from '../errors.ts';

/**
 * Failures to resolve a handle or a DID. Codes: `InvalidDid`, `InvalidHandle`, `DidNotFound`,
 * `InvalidDidDocument`, `DidResolutionUnavailable` (the directory or host did not answer usefully).
 */
export class IdentityError extends AtprotoError {}
