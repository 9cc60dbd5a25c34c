/**
 * Signing in to the old server without handing the password to this page: atproto OAuth, in a
 * window of its own. The authorization page opens in a popup, so this page never unloads and its
 * DPoP key (non-extractable, made by WebCrypto) and the tokens stay in memory only; nothing
 * secret is ever written to browser storage. The popup comes back to this page's address, which
 * then only passes the answer to the waiting page over a BroadcastChannel (the authorization
 * page's Cross-Origin-Opener-Policy cuts the popup off from its opener) and closes itself.
 */
import {
  beginAuthorization,
  type ClientIdentity,
  completeAuthorization,
  type PendingAuthorization,
} from '@portage/atproto/oauth/client';
import { OAuthError } from '@portage/atproto/oauth/errors';
import { type AuthorizationServer, discoverAuthorizationServer } from '@portage/atproto/oauth/metadata';
import { MIGRATION_SCOPE } from '@portage/atproto/oauth/migration-scope';
import type { OAuthSession } from '@portage/atproto/oauth/session';
import type { PageConfig } from './config.ts';

const CHANNEL = 'portage-oauth';

/**
 * Who this page is to an authorization server: the client metadata document the config names
 * (Portage over https), or on a loopback address the atproto loopback client, which needs no
 * document. Undefined elsewhere: the page then signs in with the password only.
 */
export function clientIdentity(config: PageConfig, here: Location = location): ClientIdentity | undefined {
  const redirectUri = `${here.origin}${here.pathname}`;
  if (config.oauthClientId) return { clientId: config.oauthClientId, redirectUri, scope: MIGRATION_SCOPE };
  if (here.protocol === 'http:' && (here.hostname === '127.0.0.1' || here.hostname === '[::1]')) {
    const query = new URLSearchParams({ redirect_uri: redirectUri, scope: MIGRATION_SCOPE });
    return { clientId: `http://localhost?${query}`, redirectUri, scope: MIGRATION_SCOPE };
  }
  return undefined;
}

/** The old server's authorization server, or undefined when it offers none this page can use. */
export function findAuthorizationServer(pds: string): Promise<AuthorizationServer | undefined> {
  return discoverAuthorizationServer(pds).catch(() => undefined);
}

/** A sign-in under way: its window, and how to give up on it. */
export interface OAuthSignIn {
  done: Promise<OAuthSession>;
  cancel(): void;
}

/**
 * Opens the authorization page for `did` in a popup and resolves to the session once the user
 * has signed in and agreed. Call it from a click: browsers only allow popups then. Rejects with
 * OAuthError (`access-denied`, `wrong-account`, `unreachable`...) or a PopupBlocked error.
 */
export function signInWithServer(opts: {
  server: AuthorizationServer;
  client: ClientIdentity;
  did: string;
  loginHint?: string;
}): OAuthSignIn {
  // Opened at once, while the click still allows it; the address follows once the PAR is done.
  const popup = window.open('about:blank', CHANNEL, 'popup,width=520,height=720');
  let cancel = (): void => {};
  const done = new Promise<OAuthSession>((resolve, reject) => {
    if (!popup) {
      reject(new PopupBlocked());
      return;
    }
    const channel = new BroadcastChannel(CHANNEL);
    let pending: PendingAuthorization | undefined;
    let finished = false;
    const finish = (): void => {
      finished = true;
      channel.close();
      if (!popup.closed) popup.close();
    };
    cancel = () => {
      finish();
      reject(new OAuthError('access-denied', 'the sign-in was cancelled'));
    };
    channel.onmessage = (event: MessageEvent<{ search?: unknown }>) => {
      if (finished || !pending || typeof event.data?.search !== 'string') return;
      const answer = new URLSearchParams(event.data.search);
      // Another tab's sign-in answers its own page.
      if (answer.get('state') !== pending.state) return;
      finish();
      completeAuthorization(pending, answer).then(resolve, reject);
    };
    beginAuthorization({ ...opts }).then(
      (started) => {
        if (finished) return;
        pending = started;
        popup.location.href = started.url;
      },
      (err: unknown) => {
        if (finished) return;
        finish();
        reject(err);
      },
    );
  });
  return { done, cancel: () => cancel() };
}

export class PopupBlocked extends Error {
  constructor() {
    super('the browser blocked the sign-in window');
    this.name = 'PopupBlocked';
  }
}

/**
 * On the page the authorization server sent the popup back to: hands the answer to the waiting
 * page and closes. Returns false on any other load, which then shows the wizard.
 */
export function answerSignInWindow(): boolean {
  const params = new URLSearchParams(location.search);
  if (!params.has('state') || !(params.has('code') || params.has('error'))) return false;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ search: location.search });
  channel.close();
  // The code is single-use and now with the waiting page: keep it out of the history.
  history.replaceState(null, '', location.pathname);
  window.close();
  return true;
}

/** What a failed sign-in means for the user, and what to do next. */
export function signInFailure(err: unknown, serverName: string, account: string): string {
  const retry = 'press Sign in with your server to try again, or use your password below';
  if (err instanceof PopupBlocked) {
    return `Your browser blocked the sign-in window. Allow pop-ups for this page and ${retry}.`;
  }
  if (err instanceof OAuthError) {
    switch (err.failure) {
      case 'access-denied':
        return `The sign-in with ${serverName} was refused or cancelled, so nothing was changed. To move the account, ${retry}.`;
      case 'wrong-account':
        return `You signed in to ${serverName} as another account. Nothing was changed: press Sign in with your server and sign in there as ${account}, or use your password below.`;
      case 'unreachable':
        return `${serverName} did not answer. Check your connection, then ${retry}.`;
      default:
        return `Signing in with ${serverName} did not work (${err.message}). Nothing was changed: use your password below.`;
    }
  }
  return `Signing in with ${serverName} did not work (${err instanceof Error ? err.message : String(err)}). Nothing was changed: use your password below.`;
}
