/**
 * The routing table: every XRPC method this PDS serves, one line per method file under api/
 * (the file path mirrors the NSID; the file's declaration says everything else about the
 * method). The server serves every export of this module, so it exports nothing else. A method
 * not listed here answers 501 MethodNotImplemented.
 */
// com.atproto.server
export { default as describeServer } from './com/atproto/server/describeServer.ts';
export { default as createAccount } from './com/atproto/server/createAccount.ts';
export { default as createSession } from './com/atproto/server/createSession.ts';
export { default as refreshSession } from './com/atproto/server/refreshSession.ts';
export { default as getSession } from './com/atproto/server/getSession.ts';
export { default as deleteSession } from './com/atproto/server/deleteSession.ts';
export { default as createAppPassword } from './com/atproto/server/createAppPassword.ts';
export { default as listAppPasswords } from './com/atproto/server/listAppPasswords.ts';
export { default as revokeAppPassword } from './com/atproto/server/revokeAppPassword.ts';
export { default as createInviteCode } from './com/atproto/server/createInviteCode.ts';
export { default as createInviteCodes } from './com/atproto/server/createInviteCodes.ts';
export { default as getAccountInviteCodes } from './com/atproto/server/getAccountInviteCodes.ts';
export { default as requestEmailConfirmation } from './com/atproto/server/requestEmailConfirmation.ts';
export { default as confirmEmail } from './com/atproto/server/confirmEmail.ts';
export { default as requestEmailUpdate } from './com/atproto/server/requestEmailUpdate.ts';
export { default as updateEmail } from './com/atproto/server/updateEmail.ts';
export { default as requestPasswordReset } from './com/atproto/server/requestPasswordReset.ts';
export { default as resetPassword } from './com/atproto/server/resetPassword.ts';
export { default as requestAccountDelete } from './com/atproto/server/requestAccountDelete.ts';
export { default as deleteAccount } from './com/atproto/server/deleteAccount.ts';
export { default as reserveSigningKey } from './com/atproto/server/reserveSigningKey.ts';
// com.atproto.temp
export { default as checkSignupQueue } from './com/atproto/temp/checkSignupQueue.ts';
// com.atproto.identity
export { default as resolveHandle } from './com/atproto/identity/resolveHandle.ts';
export { default as updateHandle } from './com/atproto/identity/updateHandle.ts';
// app.bsky.actor (served here; every other app.bsky method is forwarded to the AppView)
export { default as getPreferences } from './app/bsky/actor/getPreferences.ts';
export { default as putPreferences } from './app/bsky/actor/putPreferences.ts';
// com.atproto.repo
export { default as createRecord } from './com/atproto/repo/createRecord.ts';
export { default as putRecord } from './com/atproto/repo/putRecord.ts';
export { default as deleteRecord } from './com/atproto/repo/deleteRecord.ts';
export { default as applyWrites } from './com/atproto/repo/applyWrites.ts';
export { default as getRecord } from './com/atproto/repo/getRecord.ts';
export { default as listRecords } from './com/atproto/repo/listRecords.ts';
export { default as describeRepo } from './com/atproto/repo/describeRepo.ts';
export { default as uploadBlob } from './com/atproto/repo/uploadBlob.ts';
// com.atproto.sync
export { default as syncGetRepo } from './com/atproto/sync/getRepo.ts';
export { default as syncGetLatestCommit } from './com/atproto/sync/getLatestCommit.ts';
export { default as syncGetRecord } from './com/atproto/sync/getRecord.ts';
export { default as syncGetBlocks } from './com/atproto/sync/getBlocks.ts';
export { default as syncGetBlob } from './com/atproto/sync/getBlob.ts';
export { default as syncListBlobs } from './com/atproto/sync/listBlobs.ts';
export { default as syncListRepos } from './com/atproto/sync/listRepos.ts';
export { default as syncGetRepoStatus } from './com/atproto/sync/getRepoStatus.ts';
export { default as syncGetHead } from './com/atproto/sync/getHead.ts';
export { default as syncGetCheckout } from './com/atproto/sync/getCheckout.ts';
// accounts moving in and out (migration)
export { default as getServiceAuth } from './com/atproto/server/getServiceAuth.ts';
export { default as checkAccountStatus } from './com/atproto/server/checkAccountStatus.ts';
export { default as activateAccount } from './com/atproto/server/activateAccount.ts';
export { default as deactivateAccount } from './com/atproto/server/deactivateAccount.ts';
export { default as importRepo } from './com/atproto/repo/importRepo.ts';
export { default as listMissingBlobs } from './com/atproto/repo/listMissingBlobs.ts';
export { default as getRecommendedDidCredentials } from './com/atproto/identity/getRecommendedDidCredentials.ts';
export { default as requestPlcOperationSignature } from './com/atproto/identity/requestPlcOperationSignature.ts';
export { default as signPlcOperation } from './com/atproto/identity/signPlcOperation.ts';
export { default as submitPlcOperation } from './com/atproto/identity/submitPlcOperation.ts';
// com.atproto.admin (the admin password; the moderation service's service JWT where the reference takes it)
export { default as adminGetAccountInfo } from './com/atproto/admin/getAccountInfo.ts';
export { default as adminGetAccountInfos } from './com/atproto/admin/getAccountInfos.ts';
export { default as adminSearchAccounts } from './com/atproto/admin/searchAccounts.ts';
export { default as adminUpdateSubjectStatus } from './com/atproto/admin/updateSubjectStatus.ts';
export { default as adminGetSubjectStatus } from './com/atproto/admin/getSubjectStatus.ts';
export { default as adminUpdateAccountHandle } from './com/atproto/admin/updateAccountHandle.ts';
export { default as adminUpdateAccountEmail } from './com/atproto/admin/updateAccountEmail.ts';
export { default as adminUpdateAccountPassword } from './com/atproto/admin/updateAccountPassword.ts';
export { default as adminDeleteAccount } from './com/atproto/admin/deleteAccount.ts';
export { default as adminEnableAccountInvites } from './com/atproto/admin/enableAccountInvites.ts';
export { default as adminDisableAccountInvites } from './com/atproto/admin/disableAccountInvites.ts';
export { default as adminDisableInviteCodes } from './com/atproto/admin/disableInviteCodes.ts';
export { default as adminGetInviteCodes } from './com/atproto/admin/getInviteCodes.ts';
export { default as adminSendEmail } from './com/atproto/admin/sendEmail.ts';
