/**
 * The migration wizard at /migrate/: the built files of packages/web (never its source), read
 * once at start-up from the dist folder (PORTAGE_WEB_DIST, default packages/web/dist in this
 * repository) so the page and its hashed assets always match, whatever a rebuild does meanwhile.
 * The page learns this server's PLC directory from a JSON block put into its HTML; the target is
 * the server itself. A Content-Security-Policy keeps the page to its own scripts and limits where
 * it may connect: itself, and over https the old server, the PLC directory and DNS-over-HTTPS
 * (in development, loopback over http too).
 *
 * Served over https, the page signs in to the old server with OAuth as the client this server
 * describes at /migrate/oauth-client-metadata.json (its client_id is that URL); the page learns
 * the client_id from the same JSON block.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CLIENT_METADATA_FILE, MIGRATION_SCOPE } from '@portage/atproto/oauth/migration-scope';
import type { PdsConfig } from '../config.ts';
import type { PlainRoute, PlainRouteContext } from '../routes.ts';

export const WIZARD_PATH = '/migrate/';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

export function defaultWebDist(): string {
  return join(import.meta.dirname, '..', '..', '..', 'web', 'dist');
}

function send(c: PlainRouteContext, status: number, body: Buffer, headers: Record<string, string>): void {
  c.res.writeHead(status, { ...headers, 'Content-Length': String(body.byteLength) });
  c.res.end(c.req.method === 'HEAD' ? undefined : body);
}

/** The page's policy: scripts and styles from here only; connections as the module comment says. */
export function contentSecurityPolicy(config: Pick<PdsConfig, 'devMode' | 'didPlcUrl'>): string {
  const connect = ["'self'", 'https:'];
  if (config.devMode) connect.push('http://127.0.0.1:*', 'http://localhost:*');
  if (config.didPlcUrl?.startsWith('http:')) connect.push(new URL(config.didPlcUrl).origin);
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src ${[...new Set(connect)].join(' ')}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const PAGE_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

function missingPage(dist: string): Buffer {
  return Buffer.from(
    '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>Migration page not built</title><body><h1>The migration page is not built yet</h1>' +
      `<p>This server serves the account migration page from ${escapeHtml(dist)}, which does not exist.</p>` +
      '<p>Run <code>npm run build -w web</code> in the Portage folder, then restart the server.</p></body></html>',
  );
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Every file under `dir`, as paths relative to it. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listFiles(path, `${prefix}${name}/`));
    else out.push(`${prefix}${name}`);
  }
  return out;
}

/**
 * The wizard's OAuth client metadata (atproto OAuth: a public browser client, DPoP-bound tokens,
 * redirected back to the page), or undefined where the server has no https address: loopback
 * development uses the atproto loopback client id instead.
 */
export function wizardClientMetadata(config: Pick<PdsConfig, 'publicUrl'>): Record<string, unknown> | undefined {
  if (!config.publicUrl.startsWith('https://')) return undefined;
  const page = `${config.publicUrl}${WIZARD_PATH}`;
  return {
    client_id: `${page}${CLIENT_METADATA_FILE}`,
    client_name: 'Account migration',
    client_uri: page,
    redirect_uris: [page],
    scope: MIGRATION_SCOPE,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'web',
    dpop_bound_access_tokens: true,
  };
}

/** The routes of the wizard: /migrate (to /migrate/), the page, and each built asset. */
export function webRoutes(dist = process.env.PORTAGE_WEB_DIST ?? defaultWebDist()): PlainRoute[] {
  const files = readBuild(dist);
  const html = files?.get('index.html')?.toString('utf8');
  const routes: PlainRoute[] = [
    {
      path: '/migrate',
      async handler(c) {
        c.res.writeHead(308, { Location: WIZARD_PATH, 'Content-Length': '0' });
        c.res.end();
      },
    },
    {
      path: WIZARD_PATH,
      async handler(c) {
        if (html === undefined) {
          send(c, 503, missingPage(dist), { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
          return;
        }
        const client = wizardClientMetadata(c.ctx.config);
        const config = JSON.stringify({
          plcUrl: c.ctx.config.didPlcUrl,
          ...(client ? { oauthClientId: client.client_id } : {}),
        }).replace(/</g, '\\u003c');
        const page = html.replace(
          '<!--portage-config-->',
          `<script type="application/json" id="portage-config">${config}</script>`,
        );
        send(c, 200, Buffer.from(page, 'utf8'), {
          ...PAGE_HEADERS,
          'Content-Type': 'text/html; charset=utf-8',
          'Cache-Control': 'no-cache',
          'Content-Security-Policy': contentSecurityPolicy(c.ctx.config),
        });
      },
    },
    {
      path: `${WIZARD_PATH}${CLIENT_METADATA_FILE}`,
      async handler(c) {
        const metadata = wizardClientMetadata(c.ctx.config);
        const body = Buffer.from(JSON.stringify(metadata ?? { error: 'not_found' }), 'utf8');
        send(c, metadata ? 200 : 404, body, {
          ...PAGE_HEADERS,
          'Content-Type': 'application/json; charset=utf-8',
          'Cache-Control': 'max-age=600',
          // Authorization servers fetch it; a browser-based one may too.
          'Access-Control-Allow-Origin': '*',
        });
      },
    },
  ];
  for (const [file, body] of files ?? []) {
    if (file === 'index.html') continue;
    // Vite names what it bundles by content hash, so those never change under one name.
    const hashed = file.startsWith('assets/');
    routes.push({
      path: `${WIZARD_PATH}${file}`,
      async handler(c) {
        send(c, 200, body, {
          ...PAGE_HEADERS,
          'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
          'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
        });
      },
    });
  }
  return routes;
}

/**
 * Every file of the build by path, or undefined when there is no build. A build being rewritten
 * while the server starts (files vanishing under the listing) counts as none: the server must
 * start regardless, and the page says what to do.
 */
function readBuild(dist: string): Map<string, Buffer> | undefined {
  if (!existsSync(join(dist, 'index.html'))) return undefined;
  try {
    return new Map(listFiles(dist).map((file) => [file, readFileSync(join(dist, file))]));
  } catch {
    return undefined;
  }
}
