/**
 * Service URLs as DID documents and people give them. A module of its own, with no imports, so
 * that a command line can check a URL flag without loading the crypto the DID document code needs.
 */

/**
 * An http(s) service URL in the one form that compares equal for the same endpoint: origin (so
 * `HTTPS://Host:443` becomes `https://host`) and path, without trailing slashes; undefined when it
 * does not parse or is not http(s) (a blob: URL's origin would be the https URL inside it).
 */
export function normalizeServiceUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
    return parsed.origin + parsed.pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

/** Whether two service URLs name the same endpoint (see normalizeServiceUrl); undefined never matches. */
export function sameServiceUrl(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const x = normalizeServiceUrl(a);
  return x !== undefined && x === normalizeServiceUrl(b);
}
