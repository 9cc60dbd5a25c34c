/**
 * Finding a PDS's authorization server the atproto way: the PDS's protected-resource metadata
 * names it, and the authorization server's own metadata must name itself as that issuer and
 * offer what atproto OAuth requires (PAR, PKCE S256, DPoP with ES256, the `atproto` scope).
 */
import { OAuthError } from './errors.ts';

export interface AuthorizationServer {
  issuer: string;
  authorizationEndpoint: string;
  parEndpoint: string;
  tokenEndpoint: string;
  revocationEndpoint: string | undefined;
  scopesSupported: string[];
}

export async function discoverAuthorizationServer(
  pds: string,
  fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
): Promise<AuthorizationServer> {
  const resource = new URL(pds).origin;
  const protectedResource = await getJson(`${resource}/.well-known/oauth-protected-resource`, fetchImpl);
  if (protectedResource.resource !== resource) {
    throw new OAuthError(
      'invalid-response',
      `${resource} describes another resource (${String(protectedResource.resource)})`,
    );
  }
  const servers = protectedResource.authorization_servers;
  const issuer = Array.isArray(servers) ? servers[0] : undefined;
  if (typeof issuer !== 'string' || !/^https?:\/\//.test(issuer)) {
    throw new OAuthError('unsupported', `${resource} names no OAuth authorization server`);
  }
  const meta = await getJson(`${new URL(issuer).origin}/.well-known/oauth-authorization-server`, fetchImpl);
  if (meta.issuer !== issuer) {
    throw new OAuthError(
      'invalid-response',
      `the authorization server at ${issuer} calls itself ${String(meta.issuer)}`,
    );
  }
  const endpoint = (name: string): string => {
    const value = meta[name];
    if (typeof value !== 'string' || new URL(value).origin !== new URL(issuer).origin) {
      throw new OAuthError('unsupported', `the authorization server ${issuer} states no ${name}`);
    }
    return value;
  };
  const list = (name: string): unknown[] => (Array.isArray(meta[name]) ? (meta[name] as unknown[]) : []);
  const lacks = [
    [list('dpop_signing_alg_values_supported').includes('ES256'), 'DPoP with ES256'],
    [list('code_challenge_methods_supported').includes('S256'), 'PKCE with S256'],
    [list('scopes_supported').includes('atproto'), 'the atproto scope'],
    [meta.authorization_response_iss_parameter_supported === true, 'the iss parameter in its answers'],
  ].find(([ok]) => !ok);
  if (lacks)
    throw new OAuthError('unsupported', `the authorization server ${issuer} does not offer ${String(lacks[1])}`);
  return {
    issuer,
    authorizationEndpoint: endpoint('authorization_endpoint'),
    parEndpoint: endpoint('pushed_authorization_request_endpoint'),
    tokenEndpoint: endpoint('token_endpoint'),
    revocationEndpoint: typeof meta.revocation_endpoint === 'string' ? endpoint('revocation_endpoint') : undefined,
    scopesSupported: list('scopes_supported').filter((s): s is string => typeof s === 'string'),
  };
}

async function getJson(url: string, fetchImpl: typeof fetch): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetchImpl(url, { headers: { accept: 'application/json' }, redirect: 'error' });
  } catch {
    throw new OAuthError('unreachable', `${new URL(url).origin} did not answer`);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new OAuthError(
      'unsupported',
      `${new URL(url).origin} offers no OAuth (${new URL(url).pathname} is not there)`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new OAuthError('unreachable', `${url} answered ${res.status}`);
  }
  try {
    const value = (await res.json()) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // worded below
  }
  throw new OAuthError('invalid-response', `${url} is not a JSON object`);
}
