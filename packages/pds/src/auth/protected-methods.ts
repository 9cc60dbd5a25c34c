/**
 * The reference PDS's two lists of methods that need more than a token for another service:
 * protected ones are never forwarded and no service token is minted for them; privileged ones
 * are refused to an ordinary app password (forwarded or as a service token's `lxm`).
 */
/**
 * Account, credential and identity management: these act on the account here and are never
 * sent anywhere else, so a caller cannot get another service to see (or a token to use) them.
 */
const PROTECTED_METHODS: ReadonlySet<string> = lowerSet([
  'com.atproto.admin.sendEmail',
  'com.atproto.identity.requestPlcOperationSignature',
  'com.atproto.identity.signPlcOperation',
  'com.atproto.identity.updateHandle',
  'com.atproto.server.activateAccount',
  'com.atproto.server.confirmEmail',
  'com.atproto.server.createAppPassword',
  'com.atproto.server.deactivateAccount',
  'com.atproto.server.getAccountInviteCodes',
  'com.atproto.server.getSession',
  'com.atproto.server.listAppPasswords',
  'com.atproto.server.requestAccountDelete',
  'com.atproto.server.requestEmailConfirmation',
  'com.atproto.server.requestEmailUpdate',
  'com.atproto.server.revokeAppPassword',
  'com.atproto.server.updateEmail',
]);

/** Direct messages and account creation: not for an ordinary app password. */
const PRIVILEGED_METHODS: ReadonlySet<string> = lowerSet([
  'chat.bsky.actor.deleteAccount',
  'chat.bsky.actor.exportAccountData',
  'chat.bsky.convo.deleteMessageForSelf',
  'chat.bsky.convo.getConvo',
  'chat.bsky.convo.getConvoForMembers',
  'chat.bsky.convo.getLog',
  'chat.bsky.convo.getMessages',
  'chat.bsky.convo.leaveConvo',
  'chat.bsky.convo.listConvos',
  'chat.bsky.convo.muteConvo',
  'chat.bsky.convo.sendMessage',
  'chat.bsky.convo.sendMessageBatch',
  'chat.bsky.convo.unmuteConvo',
  'chat.bsky.convo.updateRead',
  'com.atproto.server.createAccount',
]);

function lowerSet(items: string[]): ReadonlySet<string> {
  // NSIDs compare case-insensitively here, so a re-cased name cannot slip past the lists.
  return new Set(items.map((s) => s.toLowerCase()));
}

export function isProtectedMethod(nsid: string): boolean {
  return PROTECTED_METHODS.has(nsid.toLowerCase());
}

export function isPrivilegedMethod(nsid: string): boolean {
  return PRIVILEGED_METHODS.has(nsid.toLowerCase());
}
