/**
 * The routing table: every XRPC method this PDS serves, one import per file under api/
 * (the file path mirrors the NSID). A method not listed here answers 501 MethodNotImplemented.
 */
import type { XrpcMethod } from '../xrpc/handler.ts';
import applyWrites from './com/atproto/repo/applyWrites.ts';
import createRecord from './com/atproto/repo/createRecord.ts';
import deleteRecord from './com/atproto/repo/deleteRecord.ts';
import describeRepo from './com/atproto/repo/describeRepo.ts';
import getRecord from './com/atproto/repo/getRecord.ts';
import listRecords from './com/atproto/repo/listRecords.ts';
import putRecord from './com/atproto/repo/putRecord.ts';
import uploadBlob from './com/atproto/repo/uploadBlob.ts';
import syncGetBlob from './com/atproto/sync/getBlob.ts';
import syncGetBlocks from './com/atproto/sync/getBlocks.ts';
import syncGetLatestCommit from './com/atproto/sync/getLatestCommit.ts';
import syncGetRecord from './com/atproto/sync/getRecord.ts';
import syncGetRepo from './com/atproto/sync/getRepo.ts';
import syncGetRepoStatus from './com/atproto/sync/getRepoStatus.ts';
import syncListBlobs from './com/atproto/sync/listBlobs.ts';
import syncListRepos from './com/atproto/sync/listRepos.ts';
import getPreferences from './app/bsky/actor/getPreferences.ts';
import putPreferences from './app/bsky/actor/putPreferences.ts';
import resolveHandle from './com/atproto/identity/resolveHandle.ts';
import updateHandle from './com/atproto/identity/updateHandle.ts';
import createAccount from './com/atproto/server/createAccount.ts';
import createAppPassword from './com/atproto/server/createAppPassword.ts';
import createInviteCode from './com/atproto/server/createInviteCode.ts';
import createInviteCodes from './com/atproto/server/createInviteCodes.ts';
import createSession from './com/atproto/server/createSession.ts';
import deleteSession from './com/atproto/server/deleteSession.ts';
import describeServer from './com/atproto/server/describeServer.ts';
import getAccountInviteCodes from './com/atproto/server/getAccountInviteCodes.ts';
import getSession from './com/atproto/server/getSession.ts';
import listAppPasswords from './com/atproto/server/listAppPasswords.ts';
import refreshSession from './com/atproto/server/refreshSession.ts';
import revokeAppPassword from './com/atproto/server/revokeAppPassword.ts';
// Accounts moving in and out (migration)
import getRecommendedDidCredentials from './com/atproto/identity/getRecommendedDidCredentials.ts';
import requestPlcOperationSignature from './com/atproto/identity/requestPlcOperationSignature.ts';
import signPlcOperation from './com/atproto/identity/signPlcOperation.ts';
import submitPlcOperation from './com/atproto/identity/submitPlcOperation.ts';
import importRepo from './com/atproto/repo/importRepo.ts';
import listMissingBlobs from './com/atproto/repo/listMissingBlobs.ts';
import activateAccount from './com/atproto/server/activateAccount.ts';
import checkAccountStatus from './com/atproto/server/checkAccountStatus.ts';
import deactivateAccount from './com/atproto/server/deactivateAccount.ts';
import getServiceAuth from './com/atproto/server/getServiceAuth.ts';

export const methods: XrpcMethod[] = [
  // com.atproto.server
  describeServer,
  createAccount,
  createSession,
  refreshSession,
  getSession,
  deleteSession,
  createAppPassword,
  listAppPasswords,
  revokeAppPassword,
  createInviteCode,
  createInviteCodes,
  getAccountInviteCodes,
  // com.atproto.identity
  resolveHandle,
  updateHandle,
  // app.bsky.actor (served locally; other app.bsky methods are not proxied yet)
  getPreferences,
  putPreferences,
  // com.atproto.repo
  createRecord,
  putRecord,
  deleteRecord,
  applyWrites,
  getRecord,
  listRecords,
  describeRepo,
  uploadBlob,
  // com.atproto.sync
  syncGetRepo,
  syncGetLatestCommit,
  syncGetRecord,
  syncGetBlocks,
  syncGetBlob,
  syncListBlobs,
  syncListRepos,
  syncGetRepoStatus,
  // accounts moving in and out (migration)
  getServiceAuth,
  checkAccountStatus,
  activateAccount,
  deactivateAccount,
  importRepo,
  listMissingBlobs,
  getRecommendedDidCredentials,
  requestPlcOperationSignature,
  signPlcOperation,
  submitPlcOperation,
];
