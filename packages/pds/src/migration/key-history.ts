/**
 * Which signing keys may have signed a repository being imported: every #atproto key the
 * DID has held. The current DID document covers an ordinary migration (the old PDS's key is
 * still current until the PLC operation); the PLC audit log covers the other cases, a
 * repository exported before a key rotation and restored from a backup, or an import
 * retried after the DID already points at us. Nullified operations are left out: a key that
 * only a reverted (recovered-from) operation named was never legitimately the account's.
 */
import { getAtprotoSigningKey } from '@portage/atproto/identity/did-document';
import type { DidResolver } from '@portage/atproto/identity/did-resolver';
import type { PlcClient } from '@portage/atproto/plc/client';
import { normalizePlcOperation } from '@portage/atproto/plc/operations';

export interface KeyHistorySources {
  didResolver: DidResolver;
  plcClient: PlcClient;
}

/** The account's signing keys, current first; empty when the DID cannot be resolved. */
export async function signingKeysHeldBy(sources: KeyHistorySources, did: string): Promise<string[]> {
  const keys = new Set<string>();
  const [doc, log] = await Promise.all([
    sources.didResolver.resolve(did, { noCache: true }).catch(() => undefined),
    did.startsWith('did:plc:') ? sources.plcClient.getAuditLog(did).catch(() => []) : [],
  ]);
  const current = doc ? getAtprotoSigningKey(doc) : undefined;
  if (current) keys.add(current);
  for (const entry of [...log].reverse()) {
    if (entry.nullified || entry.operation.type === 'plc_tombstone') continue;
    const key = normalizePlcOperation(entry.operation).verificationMethods.atproto;
    if (key) keys.add(key);
  }
  return [...keys];
}
