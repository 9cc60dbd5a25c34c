/**
 * Handle -> DID for this PDS: hosted accounts from the account DB (authoritative for the
 * service domains, so no network lookup for them), anything else by DNS TXT or the HTTPS
 * well-known file through the protocol library's resolver.
 */
import { serviceDomainOf } from '../account/handles.ts';
import type { AppContext } from '../context.ts';

export async function resolveHandleToDid(ctx: AppContext, handle: string): Promise<string | undefined> {
  const local = ctx.accountManager.getAccount(handle);
  if (local) return local.did;
  const domains = ctx.config.serviceHandleDomains;
  if (serviceDomainOf(handle, domains) || domains.some((d) => handle === d.slice(1))) return undefined;
  try {
    return await ctx.handleResolver.resolve(handle);
  } catch {
    return undefined;
  }
}
