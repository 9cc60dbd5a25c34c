/**
 * Deleting an account for good: its repository, records and blobs (the actor store), its row
 * with sessions, app passwords, email tokens, preferences and invite codes (the account
 * database, which announces #account with status `deleted`), and its earlier events in the
 * firehose log. Its DID document is the user's and is left as it is: the identity can move on.
 */
import type { AppContext } from '../context.ts';

export async function deleteAccountEverywhere(ctx: AppContext, did: string): Promise<void> {
  const lastSeqBefore = ctx.sequencer.lastSeq();
  await ctx.actorStore.destroy(did);
  ctx.accountManager.deleteAccount(did);
  ctx.sequencer.deleteAccountEvents(did, lastSeqBefore);
}
