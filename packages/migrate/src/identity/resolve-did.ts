/** Handle or DID -> DID, and DID -> its document, for the identity commands, the doctor and backups. */
import type { DidDocument } from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { MigrationError } from '../errors.ts';
import { describeError } from '../retry.ts';

export async function didFor(
  from: string,
  fetchImpl: typeof fetch,
  resolveTxt?: (name: string) => Promise<string[]>,
): Promise<string> {
  const given = from.trim().replace(/^@/, '');
  if (given.startsWith('did:')) return given;
  const found = resolveTxt
    ? await new HandleResolver({ resolveTxt, fetch: fetchImpl }).resolve(given.toLowerCase())
    : undefined;
  if (!found)
    throw new MigrationError('UnknownHandle', `no account found for the handle ${given}`, 'Pass the DID instead.');
  return found;
}

/** The DID document of `did`; where it does not resolve, the error that asks for the account again. */
export async function documentFor(did: string, plcUrl: string, fetchImpl: typeof fetch): Promise<DidDocument> {
  try {
    return await new DidResolver({ plcUrl, fetch: fetchImpl }).resolve(did);
  } catch (err) {
    throw new MigrationError(
      'DidNotResolved',
      describeError(err),
      { kind: 'need-input', field: 'from', reason: 'not-found', nothingChanged: true },
      { cause: err },
    );
  }
}
