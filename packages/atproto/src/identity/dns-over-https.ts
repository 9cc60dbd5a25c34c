/**
 * TXT lookups over DNS-over-HTTPS (the JSON API that Cloudflare and Google serve), for browsers,
 * which have no DNS API of their own. Plug the result into HandleResolver as `resolveTxt`.
 */
import { IdentityError } from './errors.ts';

export interface DohOptions {
  /** DoH JSON endpoint (default https://cloudflare-dns.com/dns-query). */
  endpoint?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const TYPE_TXT = 16;

export function dohResolveTxt(opts: DohOptions = {}): (name: string) => Promise<string[]> {
  const endpoint = opts.endpoint ?? 'https://cloudflare-dns.com/dns-query';
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return async (name: string) => {
    const url = `${endpoint}?name=${encodeURIComponent(name)}&type=TXT`;
    const res = await doFetch(url, {
      headers: { accept: 'application/dns-json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok)
      throw new IdentityError(
        'DidResolutionUnavailable',
        `DNS-over-HTTPS lookup of ${name} failed with HTTP ${res.status}`,
      );
    const body = (await res.json()) as { Status?: number; Answer?: { type?: number; data?: string }[] };
    if (body.Status !== 0) return []; // NXDOMAIN and friends: no records
    return (body.Answer ?? [])
      .filter((a) => a.type === TYPE_TXT && typeof a.data === 'string')
      .map((a) => parseTxtData(a.data!));
  };
}

/** DoH returns TXT data in zone-file form: one or more quoted strings with backslash escapes. */
export function parseTxtData(data: string): string {
  const parts = [...data.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
  return parts.length > 0 ? parts.join('') : data;
}
