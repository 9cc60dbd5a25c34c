/**
 * com.atproto.sync.subscribeRepos: the repository event stream, over WebSocket.
 * Subscriptions are not request/response XRPC methods, so instead of a routing-table entry this
 * file hooks the HTTP server's `upgrade` event for its path and hands each socket to the
 * firehose fan-out (sequencer/firehose.ts) with the parsed cursor.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Firehose } from '../../../../sequencer/firehose.ts';

export const SUBSCRIBE_REPOS_PATH = '/xrpc/com.atproto.sync.subscribeRepos';

/** Parses the `cursor` parameter: absent (or empty) means live only. */
export function parseCursor(value: string | null): { cursor: number | undefined } | { error: string } {
  if (value === null || value === '') return { cursor: undefined };
  const cursor = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(cursor)) {
    return { error: `cursor must be a non-negative integer, got ${JSON.stringify(value.slice(0, 40))}` };
  }
  return { cursor };
}

/**
 * Routes WebSocket upgrades of /xrpc/com.atproto.sync.subscribeRepos on `server` to the
 * firehose. Upgrades of other paths are left to other listeners (refused with 404 when there
 * are none). Returns a function that detaches the route and closes the WebSocket server.
 */
export function attachSubscribeRepos(server: Server, ctx: { firehose: Firehose }): () => void {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== SUBSCRIBE_REPOS_PATH) {
      if (server.listenerCount('upgrade') === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const parsed = parseCursor(url.searchParams.get('cursor'));
      if ('error' in parsed) ctx.firehose.reject(ws, 'InvalidRequest', parsed.error);
      else ctx.firehose.serve(ws, parsed.cursor);
    });
  };
  server.on('upgrade', onUpgrade);
  return () => {
    server.off('upgrade', onUpgrade);
    wss.close();
  };
}
