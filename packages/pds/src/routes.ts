/**
 * Plain HTTP routes outside XRPC: the health and liveness checks, the home page, robots.txt, the
 * handle-verification file, the TLS proxy's certificate check, the admin page (admin/page.ts), the OAuth
 * endpoints and pages (oauth/routes.ts), and the migration wizard. Each route says which HTTP
 * methods it answers; any other gets 405 Method Not Allowed with an Allow header. Same error
 * mapping as XRPC methods.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { adminRoutes } from './admin/page.ts';
import type { AppContext } from './context.ts';
import { checkHealth } from './health/health.ts';
import { oauthRoutes } from './oauth/routes.ts';
import { webRoutes } from './web/static-site.ts';
import { AuthRequired, InvalidRequest, NotFound } from './xrpc/errors.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface PlainRouteContext {
  ctx: AppContext;
  req: IncomingMessage;
  res: ServerResponse;
  /** The query string. */
  search: URLSearchParams;
}

export interface PlainRoute {
  path: string;
  /** The methods this route answers (default GET); GET brings HEAD with it. */
  methods?: readonly HttpMethod[];
  handler(c: PlainRouteContext): Promise<void>;
}

/** The methods a route answers, HEAD included wherever GET is (its answer without the body). */
export function allowedMethods(route: PlainRoute): HttpMethod[] {
  const methods = route.methods ?? ['GET'];
  return methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : [...methods];
}

function sendText(c: PlainRouteContext, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  const body = Buffer.from(text, 'utf8');
  c.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.byteLength });
  c.res.end(c.req.method === 'HEAD' ? undefined : body);
}

export const plainRoutes: PlainRoute[] = [
  {
    // Readiness: the databases and the blob store work (503 otherwise, as the reference answers).
    path: '/xrpc/_health',
    async handler(c) {
      const { version } = c.ctx.config;
      const report = await checkHealth({
        databases: {
          'account database': c.ctx.config.accountDbPath,
          'sequencer database': c.ctx.sequencer.db.name,
        },
        blobstore: c.ctx.blobstore,
      });
      if (!report.ok) c.ctx.logger.error({ failures: report.failures }, 'health check failed');
      const body = report.ok ? { version } : { version, error: 'Service Unavailable' };
      sendText(c, report.ok ? 200 : 503, JSON.stringify(body), 'application/json; charset=utf-8');
    },
  },
  {
    // Prometheus's scrape. With PORTAGE_METRICS_TOKEN set, only a request bearing it may read.
    path: '/metrics',
    async handler(c) {
      const token = c.ctx.config.metricsToken;
      if (token && !bearerMatches(c.req.headers.authorization, token)) {
        throw AuthRequired('/metrics needs the bearer token set in PORTAGE_METRICS_TOKEN');
      }
      sendText(c, 200, await c.ctx.metrics.render(), c.ctx.metrics.contentType);
    },
  },
  {
    // Liveness: the process answers. Touches no storage, so a slow disk does not get it restarted.
    path: '/livez',
    async handler(c) {
      sendText(c, 200, JSON.stringify({ status: 'ok' }), 'application/json; charset=utf-8');
    },
  },
  {
    path: '/',
    async handler(c) {
      sendText(
        c,
        200,
        `This is an AT Protocol Personal Data Server (Portage ${c.ctx.config.version}).\n\n` +
          'Most API routes are under /xrpc/\n\nTo move your account to this server, open /migrate/\n' +
          '\nTo see or revoke the apps that can use your account, open /account/apps\n',
      );
    },
  },
  {
    // Handle verification by HTTPS for hosted handles: the Host header names the handle.
    path: '/.well-known/atproto-did',
    async handler(c) {
      const host = (c.req.headers.host ?? '').split(':')[0]!.toLowerCase();
      const account = host ? c.ctx.accountManager.getAccount(host) : undefined;
      if (!account) {
        sendText(c, 404, 'User not found');
        return;
      }
      sendText(c, 200, account.did);
    },
  },
  {
    path: '/robots.txt',
    async handler(c) {
      sendText(c, 200, '# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n');
    },
  },
  {
    // A TLS proxy's question before it gets a certificate for a name (Caddy's on-demand TLS
    // `ask`): yes for this server's name and the handles of its accounts, so nobody can make the
    // proxy request certificates for arbitrary names under the handle domains.
    path: '/tls-check',
    async handler(c) {
      const domain = c.search.get('domain')?.toLowerCase();
      if (!domain) throw InvalidRequest('bad or missing domain query param');
      if (domain !== c.ctx.config.hostname) {
        if (!c.ctx.config.serviceHandleDomains.some((suffix) => domain.endsWith(suffix))) {
          throw InvalidRequest('handles are not provided on this domain');
        }
        if (!c.ctx.accountManager.getAccount(domain)) throw NotFound('handle not found for this domain');
      }
      sendText(c, 200, JSON.stringify({ success: true }), 'application/json; charset=utf-8');
    },
  },
  ...adminRoutes(),
  ...oauthRoutes(),
  ...webRoutes(),
];

/** Whether an Authorization header carries `Bearer <token>`, compared in constant time. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : '', 'utf8');
  const expected = Buffer.from(token, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
