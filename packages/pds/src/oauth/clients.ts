/**
 * Who an OAuth client is. A `client_id` is the URL of the client's metadata document, fetched
 * here through the forwarder's address guard (proxy/upstream.ts: no private, link-local or,
 * outside development, loopback addresses, checked on every address DNS gives), within a size
 * and time limit, and cached for a while. The document must name itself as the client_id.
 *
 * `http://localhost` client ids are the spec's development clients: no document, redirect URIs
 * on 127.0.0.1 or [::1] given in the id's query (`redirect_uri`), scope from `scope`.
 */
import { importJWK, type JWK, type KeyLike } from 'jose';
import { XrpcError } from '../xrpc/errors.ts';
import { readSmallBody, type Upstream } from '../proxy/upstream.ts';
import { invalidClientMetadata, invalidRedirectUri } from './errors.ts';

const MAX_METADATA_BYTES = 64 * 1024;
const CACHE_TTL_MS = 10 * 60_000;
const CACHE_MAX = 1000;

export interface ClientMetadata {
  client_id: string;
  client_name?: string;
  client_uri?: string;
  logo_uri?: string;
  redirect_uris: string[];
  scope: string;
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: 'none' | 'private_key_jwt';
  token_endpoint_auth_signing_alg?: string;
  application_type: 'web' | 'native';
  dpop_bound_access_tokens: boolean;
  jwks?: { keys: JWK[] };
  jwks_uri?: string;
}

export interface Client {
  id: string;
  metadata: ClientMetadata;
  /** A development client on this machine (`http://localhost`), with no metadata document. */
  loopback: boolean;
  /** A confidential client's public keys (private_key_jwt), by kid. */
  keys(): Promise<{ kid?: string; alg?: string; key: KeyLike | Uint8Array }[]>;
}

export class ClientResolver {
  readonly #upstream: Upstream;
  readonly #cache = new Map<string, { client: Promise<Client>; at: number }>();

  constructor(upstream: Upstream) {
    this.#upstream = upstream;
  }

  async resolve(clientId: string): Promise<Client> {
    const cached = this.#cache.get(clientId);
    if (cached && Date.now() - cached.at < CACHE_TTL_MS) return cached.client;
    const client = this.#load(clientId);
    if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(clientId, { client, at: Date.now() });
    client.catch(() => this.#cache.delete(clientId));
    return client;
  }

  async #load(clientId: string): Promise<Client> {
    let url: URL;
    try {
      url = new URL(clientId);
    } catch {
      throw invalidClientMetadata('client_id must be a URL');
    }
    if (url.protocol === 'http:' && url.hostname === 'localhost') return loopbackClient(clientId, url);
    if (url.hash) throw invalidClientMetadata('client_id must not have a fragment');
    if (url.username || url.password) throw invalidClientMetadata('client_id must not contain credentials');
    if (url.pathname === '/') throw invalidClientMetadata('client_id must have a path (the metadata document)');
    const problem = this.#upstream.problem(url);
    if (problem) throw invalidClientMetadata(`client metadata cannot be fetched from ${url.origin}: ${problem}`);
    const document = await this.#fetchJson(url, 'client metadata');
    const metadata = checkMetadata(document, clientId);
    let jwks: Promise<{ keys: JWK[] }> | undefined;
    return {
      id: clientId,
      metadata,
      loopback: false,
      keys: async () => {
        if (metadata.jwks) jwks ??= Promise.resolve(metadata.jwks);
        else if (metadata.jwks_uri)
          jwks ??= this.#fetchJson(new URL(metadata.jwks_uri), 'client JWKS') as Promise<{ keys: JWK[] }>;
        else return [];
        const { keys } = await jwks;
        if (!Array.isArray(keys)) throw invalidClientMetadata('the client JWKS has no keys');
        const usable = keys.filter((k) => k && typeof k === 'object' && !('d' in k) && (!k.use || k.use === 'sig'));
        const imported = await Promise.all(
          usable.map(async (k) => {
            try {
              return { kid: k.kid, alg: k.alg, key: await importJWK(k, k.alg ?? 'ES256') };
            } catch {
              return undefined; // a key this server cannot use verifies nothing
            }
          }),
        );
        return imported.filter((k) => k !== undefined);
      },
    };
  }

  async #fetchJson(url: URL, what: string): Promise<unknown> {
    let res;
    try {
      res = await this.#upstream.send({ url, method: 'GET', headers: { accept: 'application/json' } });
    } catch (err) {
      const why = err instanceof XrpcError ? err.message : 'unreachable';
      throw invalidClientMetadata(`${what} could not be fetched: ${why}`);
    }
    if (res.statusCode !== 200) {
      res.resume();
      throw invalidClientMetadata(`${what} could not be fetched: ${url.origin} answered ${res.statusCode}`);
    }
    const type = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/json') {
      res.resume();
      throw invalidClientMetadata(`${what} must be served as application/json`);
    }
    const body = await readSmallBody(res, MAX_METADATA_BYTES);
    if (!body) throw invalidClientMetadata(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw invalidClientMetadata(`${what} is not valid JSON`);
    }
  }
}

function strings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** Checks a fetched document against the atproto profile's rules for client metadata. */
export function checkMetadata(doc: unknown, clientId: string): ClientMetadata {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw invalidClientMetadata('client metadata must be a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.client_id !== clientId) {
    throw invalidClientMetadata(
      `client metadata names client_id ${JSON.stringify(m.client_id)}, not the URL it was fetched from`,
    );
  }
  if (!strings(m.redirect_uris) || m.redirect_uris.length === 0)
    throw invalidClientMetadata('redirect_uris is required');
  for (const uri of m.redirect_uris) redirectUriProblem(uri);
  if (typeof m.scope !== 'string' || !m.scope.split(' ').includes('atproto')) {
    throw invalidClientMetadata('scope must include "atproto"');
  }
  const grantTypes = m.grant_types ?? ['authorization_code'];
  if (!strings(grantTypes) || !grantTypes.includes('authorization_code')) {
    throw invalidClientMetadata('grant_types must include "authorization_code"');
  }
  const responseTypes = m.response_types ?? ['code'];
  if (!strings(responseTypes) || !responseTypes.includes('code'))
    throw invalidClientMetadata('response_types must include "code"');
  if (m.dpop_bound_access_tokens !== true) throw invalidClientMetadata('dpop_bound_access_tokens must be true');
  const auth = m.token_endpoint_auth_method ?? 'none';
  if (auth !== 'none' && auth !== 'private_key_jwt') {
    throw invalidClientMetadata('token_endpoint_auth_method must be "none" or "private_key_jwt"');
  }
  if (m.jwks_uri !== undefined && (typeof m.jwks_uri !== 'string' || !URL.canParse(m.jwks_uri))) {
    throw invalidClientMetadata('jwks_uri must be a URL');
  }
  if (auth === 'private_key_jwt' && !m.jwks && !m.jwks_uri) {
    throw invalidClientMetadata('a private_key_jwt client must publish jwks or jwks_uri');
  }
  const applicationType = m.application_type ?? 'web';
  if (applicationType !== 'web' && applicationType !== 'native')
    throw invalidClientMetadata('application_type must be web or native');
  return {
    client_id: clientId,
    client_name: typeof m.client_name === 'string' ? m.client_name.slice(0, 100) : undefined,
    client_uri: typeof m.client_uri === 'string' ? m.client_uri : undefined,
    logo_uri: typeof m.logo_uri === 'string' ? m.logo_uri : undefined,
    redirect_uris: m.redirect_uris,
    scope: m.scope,
    grant_types: grantTypes,
    response_types: responseTypes,
    token_endpoint_auth_method: auth,
    token_endpoint_auth_signing_alg:
      typeof m.token_endpoint_auth_signing_alg === 'string' ? m.token_endpoint_auth_signing_alg : undefined,
    application_type: applicationType,
    dpop_bound_access_tokens: true,
    jwks: m.jwks && typeof m.jwks === 'object' ? (m.jwks as { keys: JWK[] }) : undefined,
    jwks_uri: typeof m.jwks_uri === 'string' ? m.jwks_uri : undefined,
  };
}

function redirectUriProblem(uri: string): void {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalidClientMetadata(`redirect URI ${JSON.stringify(uri)} is not a URL`);
  }
  if (url.hash) throw invalidClientMetadata('redirect URIs must not have a fragment');
  if (url.protocol === 'javascript:' || url.protocol === 'data:')
    throw invalidClientMetadata('redirect URI scheme not allowed');
}

/** The spec's development client: `http://localhost[?redirect_uri=...&scope=...]`. */
function loopbackClient(clientId: string, url: URL): Client {
  if (url.port || (url.pathname !== '/' && url.pathname !== '')) {
    throw invalidClientMetadata('a development client_id is http://localhost with no port or path');
  }
  const redirectUris = url.searchParams.getAll('redirect_uri');
  for (const uri of redirectUris) {
    const parsed = URL.canParse(uri) ? new URL(uri) : undefined;
    if (!parsed || parsed.protocol !== 'http:' || (parsed.hostname !== '127.0.0.1' && parsed.hostname !== '[::1]')) {
      throw invalidRedirectUri('a development client may only redirect to http://127.0.0.1 or http://[::1]');
    }
  }
  const scope = url.searchParams.get('scope') ?? 'atproto';
  if (!scope.split(' ').includes('atproto')) throw invalidClientMetadata('scope must include "atproto"');
  return {
    id: clientId,
    loopback: true,
    metadata: {
      client_id: clientId,
      client_name: 'Development app on this computer',
      redirect_uris: redirectUris.length ? redirectUris : ['http://127.0.0.1/', 'http://[::1]/'],
      scope,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      dpop_bound_access_tokens: true,
    },
    keys: async () => [],
  };
}

/**
 * Whether `given` is one of the client's redirect URIs. Loopback redirect URIs of a native or
 * development client match on any port (RFC 8252 7.3); everything else must match exactly.
 */
export function isRegisteredRedirect(client: Client, given: string): boolean {
  for (const registered of client.metadata.redirect_uris) {
    if (registered === given) return true;
    if (client.loopback || client.metadata.application_type === 'native') {
      const a = URL.canParse(registered) ? new URL(registered) : undefined;
      const b = URL.canParse(given) ? new URL(given) : undefined;
      if (
        a &&
        b &&
        a.protocol === 'http:' &&
        b.protocol === 'http:' &&
        (a.hostname === '127.0.0.1' || a.hostname === '[::1]') &&
        a.hostname === b.hostname &&
        a.pathname === b.pathname &&
        a.search === b.search
      ) {
        return true;
      }
    }
  }
  return false;
}
