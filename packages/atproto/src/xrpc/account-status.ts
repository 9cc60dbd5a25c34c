/**
 * What `com.atproto.server.checkAccountStatus` answers: how far an account's repository, records
 * and blobs have arrived on a server, and whether it is active there. The server (Portage's
 * handler) and the migration engine (reading it after each step) share this one shape.
 */
export interface AccountStatus {
  activated: boolean;
  validDid: boolean;
  repoCommit: string;
  repoRev: string;
  repoBlocks: number;
  indexedRecords: number;
  privateStateValues: number;
  expectedBlobs: number;
  importedBlobs: number;
}
