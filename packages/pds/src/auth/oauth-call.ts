/**
 * What an OAuth token may call, decided once per request (server.ts for methods served here,
 * proxy/ for forwarded ones) from the scopes the user granted. The reference PDS's choices:
 * repository writes need a `repo:` permission for each collection and action, uploads a
 * `blob:` permission for the content type, account and identity changes `account:` and
 * `identity:` permissions, calls that act on another service (getServiceAuth, forwarded calls,
 * preferences, which belong to the AppView) an `rpc:` permission for that service, and the
 * methods that manage credentials are never open to an app. A refusal is 403
 * ScopeMissingError naming the scope that would allow the call.
 */
import type { OAuthPermissions, RepoAction } from '../oauth/scope.ts';
import { Forbidden, XrpcError } from '../xrpc/errors.ts';

/** Account and credential management an app never does with an OAuth token. */
const NEVER_WITH_OAUTH = new Set([
  'com.atproto.server.activateAccount',
  'com.atproto.server.createAppPassword',
  'com.atproto.server.listAppPasswords',
  'com.atproto.server.revokeAppPassword',
  'com.atproto.server.requestAccountDelete',
  'com.atproto.server.requestEmailUpdate',
  'com.atproto.server.updateEmail',
  'com.atproto.server.getAccountInviteCodes',
  'com.atproto.server.createInviteCode',
  'com.atproto.server.createInviteCodes',
  'com.atproto.server.deleteSession',
  'com.atproto.server.refreshSession',
  'com.atproto.server.reserveSigningKey',
]);

/** Methods served here that the reference treats as calls to the AppView. */
const APPVIEW_RPC = new Set(['app.bsky.actor.getPreferences', 'app.bsky.actor.putPreferences']);

function missing(scope: string): XrpcError {
  return new XrpcError(403, 'ScopeMissingError', `Missing required scope "${scope}"`);
}

interface Write {
  action: RepoAction;
  collection: string;
}

function writesOf(nsid: string, input: unknown): Write[] {
  const body = (input ?? {}) as Record<string, unknown>;
  const collection = String(body.collection ?? '');
  switch (nsid) {
    case 'com.atproto.repo.createRecord':
      return [{ action: 'create', collection }];
    case 'com.atproto.repo.putRecord':
      // A put may create the record or replace it: both must be allowed.
      return [
        { action: 'create', collection },
        { action: 'update', collection },
      ];
    case 'com.atproto.repo.deleteRecord':
      return [{ action: 'delete', collection }];
    case 'com.atproto.repo.applyWrites': {
      const writes = Array.isArray(body.writes) ? (body.writes as Record<string, unknown>[]) : [];
      return writes.map((w) => ({
        action:
          w.$type === 'com.atproto.repo.applyWrites#create'
            ? 'create'
            : w.$type === 'com.atproto.repo.applyWrites#update'
              ? 'update'
              : 'delete',
        collection: String(w.collection ?? ''),
      }));
    }
    default:
      return [];
  }
}

export interface OAuthCall {
  nsid: string;
  params: Record<string, unknown>;
  input: unknown;
  inputEncoding: string | undefined;
  /** This server's AppView as an rpc audience (`did#bsky_appview`), when one is configured. */
  appViewAud: string | undefined;
}

/** Throws 403 ScopeMissingError (or Forbidden) when the granted scopes do not cover the call. */
export function authorizeOAuthCall(permissions: OAuthPermissions, call: OAuthCall): void {
  const { nsid } = call;
  if (NEVER_WITH_OAUTH.has(nsid)) throw Forbidden('OAuth credentials are not supported for this endpoint');
  for (const w of writesOf(nsid, call.input)) {
    if (!permissions.allowsRepo(w.collection, w.action)) throw missing(`repo:${w.collection}?action=${w.action}`);
  }
  switch (nsid) {
    case 'com.atproto.repo.uploadBlob': {
      const mime = call.inputEncoding ?? 'application/octet-stream';
      if (!permissions.allowsBlob(mime)) throw missing(`blob:${mime}`);
      return;
    }
    case 'com.atproto.repo.importRepo':
      if (!permissions.allowsAccount('repo', 'manage')) throw missing('account:repo?action=manage');
      return;
    case 'com.atproto.server.deactivateAccount':
      if (!permissions.allowsAccount('status', 'manage')) throw missing('account:status?action=manage');
      return;
    case 'com.atproto.server.requestEmailConfirmation':
    case 'com.atproto.server.confirmEmail':
      if (!permissions.allowsAccount('email', 'manage')) throw missing('account:email?action=manage');
      return;
    case 'com.atproto.identity.updateHandle':
      if (!permissions.allowsIdentity('handle')) throw missing('identity:handle');
      return;
    case 'com.atproto.identity.requestPlcOperationSignature':
    case 'com.atproto.identity.signPlcOperation':
    case 'com.atproto.identity.submitPlcOperation':
      if (!permissions.allowsIdentity('*')) throw missing('identity:*');
      return;
    case 'com.atproto.server.getServiceAuth': {
      const aud = String(call.params.aud ?? '');
      const lxm = typeof call.params.lxm === 'string' ? call.params.lxm : '*';
      if (!permissions.allowsRpc(aud, lxm)) throw missing(`rpc:${lxm}?aud=${aud}`);
      return;
    }
  }
  if (APPVIEW_RPC.has(nsid)) {
    const aud = call.appViewAud ?? '*';
    if (!permissions.allowsRpc(aud, nsid)) throw missing(`rpc:${nsid}?aud=${aud}`);
  }
}

/** A forwarded call: the user must have let the app call `nsid` on that service. */
export function authorizeOAuthForward(permissions: OAuthPermissions, aud: string, nsid: string): void {
  if (!permissions.allowsRpc(aud, nsid)) throw missing(`rpc:${nsid}?aud=${aud}`);
}
