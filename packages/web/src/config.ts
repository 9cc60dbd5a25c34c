/**
 * What the page knows before the user types anything. Served by Portage, the server embeds a
 * small JSON block (its PLC directory; the target is the server itself). As a static build there
 * is none: the user names the new PDS, and DIDs resolve through the public PLC directory unless
 * the host put a config.json beside the page.
 */
export interface PageConfig {
  /** The new PDS, when the page is served by it; undefined in the static build. */
  target: string | undefined;
  plcUrl: string;
  /** The DNS-over-HTTPS JSON endpoint for handle lookups. */
  dohUrl: string;
  /**
   * The OAuth client_id for signing in to the old server without the password: the URL of a
   * client metadata document that names this page as its redirect URI (Portage over https
   * serves one; a static host may publish its own and name it in config.json).
   */
  oauthClientId?: string;
}

export async function readPageConfig(): Promise<PageConfig> {
  const embedded = parse(document.getElementById('portage-config')?.textContent);
  if (embedded) {
    return {
      target: location.origin,
      plcUrl: embedded.plcUrl ?? PUBLIC_PLC,
      dohUrl: embedded.dohUrl ?? PUBLIC_DOH,
      ...(embedded.oauthClientId ? { oauthClientId: embedded.oauthClientId } : {}),
    };
  }
  // The static build: whoever hosts it may put a config.json beside the page (another PLC
  // directory or DNS-over-HTTPS resolver). It comes from the same origin as the page's own script,
  // so it is trusted as much; nothing in the address can change it.
  let hosted: ReturnType<typeof parse>;
  try {
    const res = await fetch('./config.json', { cache: 'no-cache' });
    hosted = res.ok ? parse(await res.text()) : undefined;
  } catch {
    hosted = undefined;
  }
  return {
    target: undefined,
    plcUrl: hosted?.plcUrl ?? PUBLIC_PLC,
    dohUrl: hosted?.dohUrl ?? PUBLIC_DOH,
    ...(hosted?.oauthClientId ? { oauthClientId: hosted.oauthClientId } : {}),
  };
}

const PUBLIC_PLC = 'https://plc.directory';
const PUBLIC_DOH = 'https://cloudflare-dns.com/dns-query';

function parse(
  text: string | null | undefined,
): { plcUrl?: string; dohUrl?: string; oauthClientId?: string } | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as { plcUrl?: unknown; dohUrl?: unknown; oauthClientId?: unknown };
    if (typeof value !== 'object' || value === null) return undefined;
    return {
      ...(typeof value.plcUrl === 'string' ? { plcUrl: value.plcUrl } : {}),
      ...(typeof value.dohUrl === 'string' ? { dohUrl: value.dohUrl } : {}),
      ...(typeof value.oauthClientId === 'string' && value.oauthClientId.startsWith('https://')
        ? { oauthClientId: value.oauthClientId }
        : {}),
    };
  } catch {
    return undefined;
  }
}
