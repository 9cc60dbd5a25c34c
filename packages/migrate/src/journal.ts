/**
 * What the engine remembers between runs, beyond what it can ask the servers. Deliberately
 * small and free of secrets: no password, token or private key is ever written here (the signed
 * PLC operation is not secret: it is published the moment it is submitted).
 */
import type { MissingBlob } from './events.ts';
import type { MigrationStorage } from './storage.ts';

export interface Journal {
  version: 1;
  did: string;
  oldPds: string;
  newPds: string;
  newServiceDid?: string;
  /** The PDS URL the new server asked to publish in the DID document (may differ from newPds). */
  newPdsEndpoint?: string;
  newHandle?: string;
  createdAt: string;
  updatedAt: string;
  /** Blobs that failed for good in the last run, with why. Cleared when they arrive. */
  failedBlobs: Record<string, MissingBlob>;
  /** When a server's spent budget (a daily upload limit) refills: the blob phase goes on from then. */
  resumeAfter?: string;
  /** When we last asked the old server to email a PLC token. */
  plcTokenRequestedAt?: string;
  /** An operation signed by the old server but maybe not yet submitted. */
  signedOperation?: { prev?: string | null; [key: string]: unknown };
  /** The public did:key of the user-held recovery key, when one was made. */
  recoveryKeyDid?: string;
  identityUpdatedAt?: string;
  activatedAt?: string;
  oldDeactivatedAt?: string;
}

export function journalKey(did: string): string {
  return `migration-${did}`;
}

export async function loadJournal(storage: MigrationStorage, did: string): Promise<Journal | undefined> {
  const text = await storage.get(journalKey(did));
  if (!text) return undefined;
  const journal = JSON.parse(text) as Journal;
  // A journal for another account under the same key would mean a corrupted store: ignore it.
  return journal.did === did ? journal : undefined;
}

export async function saveJournal(storage: MigrationStorage, journal: Journal): Promise<void> {
  journal.updatedAt = new Date().toISOString();
  await storage.set(journalKey(journal.did), JSON.stringify(journal, null, 2));
}
