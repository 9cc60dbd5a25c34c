/**
 * The OAuth authorization server of one PDS, wired: its keys, tables, client resolver (with
 * its own guarded upstream, so a slow client metadata host never holds the forwarder's pool),
 * DPoP verifier and provider.
 */
import type { AccountManager } from '../account/account-manager.ts';
import type { PdsConfig } from '../config.ts';
import { Upstream } from '../proxy/upstream.ts';
import { ClientResolver } from './clients.ts';
import { DpopVerifier } from './dpop.ts';
import { loadOAuthKeys } from './keys.ts';
import { OAuthProvider } from './provider.ts';
import { OAuthStore } from './store.ts';

/** A client's metadata document must arrive within this long. */
const CLIENT_FETCH_TIMEOUT_MS = 10_000;

export class OAuthServer {
  readonly provider: OAuthProvider;
  /** Form tokens of the pages derive from this. */
  readonly formSecret: Buffer;
  readonly #upstream: Upstream;

  private constructor(provider: OAuthProvider, formSecret: Buffer, upstream: Upstream) {
    this.provider = provider;
    this.formSecret = formSecret;
    this.#upstream = upstream;
  }

  static async create(config: PdsConfig, accountManager: AccountManager): Promise<OAuthServer> {
    const keys = await loadOAuthKeys(config.dataDirectory);
    const upstream = new Upstream({
      headersTimeoutMs: CLIENT_FETCH_TIMEOUT_MS,
      bodyTimeoutMs: CLIENT_FETCH_TIMEOUT_MS,
      // The forwarder's rule: loopback and plain http only in development.
      policy: { allowLoopback: config.devMode || config.hostname === 'localhost' },
    });
    const provider = new OAuthProvider({
      config,
      accountManager,
      keys,
      store: new OAuthStore(accountManager.db),
      clients: new ClientResolver(upstream),
      dpop: new DpopVerifier(keys.secret),
    });
    return new OAuthServer(provider, keys.secret, upstream);
  }

  close(): void {
    this.#upstream.close();
  }
}
