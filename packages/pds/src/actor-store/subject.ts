/**
 * The subjects of moderation (com.atproto.admin.updateSubjectStatus and getSubjectStatus): an
 * account, a record by AT-URI, or one blob of an account.
 */
import { InvalidRequest } from '../xrpc/errors.ts';

export type ModerationSubject =
  | { kind: 'repo'; did: string }
  | { kind: 'record'; did: string; collection: string; rkey: string; uri: string }
  | { kind: 'blob'; did: string; cid: string };

/** A record's AT-URI split into its DID, collection and rkey (a handle authority is refused). */
export function recordSubject(uri: string): ModerationSubject & { kind: 'record' } {
  const match = /^at:\/\/(did:[^/]+)\/([^/]+)\/([^/]+)$/.exec(uri);
  if (!match) throw InvalidRequest(`Invalid record uri: ${uri}`);
  return { kind: 'record', did: match[1]!, collection: match[2]!, rkey: match[3]!, uri };
}
