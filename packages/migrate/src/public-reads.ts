/**
 * The old server's blob reads (com.atproto.sync.getBlob) without the session while the account
 * is active, when they are public. In a browser, a cross-origin request that carries an
 * Authorization header is preceded by a CORS preflight, and preflights are cached per URL: every
 * blob has its own URL, so each would cost a second round trip and a connection slot. Without
 * the header the read is a plain GET. A deactivated or taken-down account's repository is served
 * to its owner only (the old server answers RepoDeactivated / RepoTakendown): then the read is
 * made signed in, and every later one to that server too.
 */
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import type { PdsSession } from './session.ts';

const REFUSED_TO_THE_PUBLIC = new Set(['RepoDeactivated', 'RepoTakendown', 'RepoSuspended']);

/** Servers that refused a public read of this account: asked signed in from then on. */
const ownerOnly = new WeakSet<PdsSession>();

export async function publicRead(
  old: PdsSession,
  nsid: string,
  req: Parameters<PdsSession['request']>[1],
): Promise<Response> {
  if (old.signedIn && ownerOnly.has(old)) return old.request(nsid, req);
  try {
    return await old.anonymous.request(nsid, req);
  } catch (err) {
    if (!old.signedIn || !refusedToThePublic(err)) throw err;
    ownerOnly.add(old);
    return old.request(nsid, req);
  }
}

/** The server wants to know who asks: it names the account's state, or asks for credentials. */
function refusedToThePublic(err: unknown): boolean {
  if (!(err instanceof XrpcClientError)) return false;
  if (err.status === 401 || err.status === 403) return true;
  return err.status === 400 && REFUSED_TO_THE_PUBLIC.has(err.error);
}
