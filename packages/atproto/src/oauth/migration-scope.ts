/**
 * The OAuth scopes an account move asks the old server for, in the atproto permission syntax:
 * the PLC operation (`identity:*`: requestPlcOperationSignature and signPlcOperation), deactivating
 * the old account (`account:status?action=manage`), the new server's account-creation token
 * (getServiceAuth for createAccount, any audience since the new server is chosen later) and the
 * preferences. Reading the repository and blobs needs no scope: the sync methods are public.
 */
export const MIGRATION_SCOPE = [
  'atproto',
  'identity:*',
  'account:status?action=manage',
  'rpc:com.atproto.server.createAccount?aud=*',
  'rpc:app.bsky.actor.getPreferences?aud=*',
].join(' ');

/** Where the wizard served by a PDS finds its client metadata document, under its own path. */
export const CLIENT_METADATA_FILE = 'oauth-client-metadata.json';
