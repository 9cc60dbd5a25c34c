/** Handle or DID -> DID, for the identity commands and the doctor. */
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { MigrationError } from '../errors.ts';

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
