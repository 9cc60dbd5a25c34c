/**
 * What the page knows before the user types anything. Served by Portage, the server embeds a
 * small JSON block (its PLC directory; the target is the server itself). As a static build there
 * is none: the user names the new PDS, and DIDs resolve through the public PLC directory.
 */
export interface PageConfig {
  /** The new PDS, when the page is served by it; undefined in the static build. */
  target: string | undefined;
  plcUrl: string;
  /** The DNS-over-HTTPS JSON endpoint for handle lookups. */
  dohUrl: string;
}

export function readPageConfig(): PageConfig {
  const el = document.getElementById('portage-config');
  let embedded: { plcUrl?: unknown; dohUrl?: unknown } | undefined;
  try {
    embedded = el?.textContent ? (JSON.parse(el.textContent) as typeof embedded) : undefined;
  } catch {
    embedded = undefined;
  }
  return {
    target: embedded ? location.origin : undefined,
    plcUrl: typeof embedded?.plcUrl === 'string' ? embedded.plcUrl : 'https://plc.directory',
    dohUrl: typeof embedded?.dohUrl === 'string' ? embedded.dohUrl : 'https://cloudflare-dns.com/dns-query',
  };
}
