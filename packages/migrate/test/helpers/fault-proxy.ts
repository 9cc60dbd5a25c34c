/**
 * An HTTP proxy that misbehaves on purpose, between the engine and a server: some requests get a
 * 500, some a reset connection, some a 429 with RateLimit headers, and chosen downloads are cut
 * mid-body. Faults are injected before the request reaches the server, except the cut body.
 * Deterministic for a given seed, so a failure can be replayed.
 */
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultPlan {
  seed: number;
  /** Chance of a 500 for each request. */
  error500: number;
  /** Chance of a reset connection. */
  reset: number;
  /** Chance of a 429 with RateLimit-Reset one second ahead. */
  rateLimited: number;
  /** How many getBlob answers to cut after half their body. */
  cutBlobBodies: number;
}

export interface FaultStats {
  requests: number;
  error500: number;
  reset: number;
  rateLimited: number;
  cut: number;
}

export interface FaultProxy {
  url: string;
  stats: FaultStats;
  close(): Promise<void>;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

export async function startFaultProxy(target: string, plan: FaultPlan): Promise<FaultProxy> {
  const to = new URL(target);
  const random = rng(plan.seed);
  const stats: FaultStats = { requests: 0, error500: 0, reset: 0, rateLimited: 0, cut: 0 };
  let cutsLeft = plan.cutBlobBodies;
  const server: Server = createServer((req, res) => {
    stats.requests++;
    const roll = random();
    if (roll < plan.error500) {
      stats.error500++;
      res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ error: 'InternalServerError', message: 'injected fault' }));
      req.resume();
      return;
    }
    if (roll < plan.error500 + plan.reset) {
      stats.reset++;
      req.socket.destroy();
      return;
    }
    if (roll < plan.error500 + plan.reset + plan.rateLimited) {
      stats.rateLimited++;
      res.writeHead(429, {
        'content-type': 'application/json',
        'ratelimit-limit': '100',
        'ratelimit-remaining': '0',
        'ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 1),
        connection: 'close',
      });
      res.end(JSON.stringify({ error: 'RateLimitExceeded', message: 'injected rate limit' }));
      req.resume();
      return;
    }
    const cut = cutsLeft > 0 && req.url?.startsWith('/xrpc/com.atproto.sync.getBlob');
    if (cut) cutsLeft--;
    forward(to, req, res, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!cut) {
        up.pipe(res);
        return;
      }
      const length = Number(up.headers['content-length'] ?? 0);
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        if (sent >= length / 2) return;
        const part = chunk.subarray(0, Math.max(0, Math.ceil(length / 2) - sent));
        sent += part.length;
        res.write(part);
        if (sent >= length / 2) {
          stats.cut++;
          up.destroy();
          res.socket?.destroy();
        }
      });
    });
  });
  return { ...(await listenOnLoopback(server)), stats };
}

/** Sends `req` on to `to` and hands the answer to `respond` (by default relayed as it is). */
export function forward(
  to: URL,
  req: IncomingMessage,
  res: ServerResponse,
  respond = (up: IncomingMessage) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  },
): void {
  const upstream = request(
    { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } },
    respond,
  );
  upstream.on('error', () => res.socket?.destroy());
  req.pipe(upstream);
}

/** Starts `server` on a random loopback port: its URL, and a close() that drops open connections. */
export async function listenOnLoopback(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
