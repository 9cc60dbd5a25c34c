/**
 * Plain HTTP routes outside XRPC: the health check, the home page, robots.txt and the
 * handle-verification file. Same error mapping as XRPC methods.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppContext } from './context.ts';
import { webRoutes } from './web/static-site.ts';
import type { Params } from './xrpc/params.ts';

export interface PlainRouteContext {
  ctx: AppContext;
  req: IncomingMessage;
  res: ServerResponse;
  params: Params;
}

export interface PlainRoute {
  path: string;
  handler(c: PlainRouteContext): Promise<void>;
}

function sendText(c: PlainRouteContext, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  const body = Buffer.from(text, 'utf8');
  c.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.byteLength });
  c.res.end(c.req.method === 'HEAD' ? undefined : body);
}

export const plainRoutes: PlainRoute[] = [
  {
    path: '/xrpc/_health',
    async handler(c) {
      sendText(c, 200, JSON.stringify({ version: c.ctx.config.version }), 'application/json; charset=utf-8');
    },
  },
  {
    path: '/',
    async handler(c) {
      sendText(
        c,
        200,
        `This is an AT Protocol Personal Data Server (Portage ${c.ctx.config.version}).\n\n` +
          'Most API routes are under /xrpc/\n\nTo move your account to this server, open /migrate/\n',
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
  ...webRoutes(),
];
