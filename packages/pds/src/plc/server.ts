/**
 * The embedded PLC directory's HTTP API, the same routes and error bodies as the reference
 * directory (plc.directory): POST /{did} submits an operation; GET /{did} (DID document),
 * /{did}/data, /{did}/log, /{did}/log/audit, /{did}/log/last; GET /export?count&after
 * (JSON lines). Errors are `{message}` with 400 (rejected operation, bad request), 404 (unknown
 * DID) or 410 (tombstoned DID).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { plcDataToDidDocument } from '@portage/atproto/plc/document';
import { PlcError } from '@portage/atproto/plc/errors';
import { MAX_EXPORT_COUNT, PlcDirectory } from './directory.ts';

/** Operations are at most 7500 bytes of DAG-CBOR; JSON is somewhat larger. Anything bigger is abuse. */
const MAX_BODY_BYTES = 32 * 1024;

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

/** A node:http request handler serving `directory`; usable on its own server or mounted by a host. */
export function createPlcRequestHandler(directory: PlcDirectory): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Public, unauthenticated data: browsers (the migration tool) may read it from any origin.
    res.setHeader('access-control-allow-origin', '*');
    handle(directory, req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) return sendJson(res, err.status, { message: err.message });
      if (err instanceof PlcError) {
        const status = err.code === 'NotFound' ? 404 : err.code === 'Unavailable' ? 503 : 400;
        return sendJson(res, status, { message: err.message });
      }
      sendJson(res, 500, { message: 'Internal Server Error' });
    });
  };
}

async function handle(directory: PlcDirectory, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://plc.invalid');
  const method = req.method ?? 'GET';
  if (method === 'OPTIONS') {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'content-type',
      'access-control-max-age': '86400',
    });
    res.end();
    return;
  }
  let segments: string[];
  try {
    segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path');
  }

  if (segments.length === 1 && segments[0] === '_health' && method === 'GET') {
    return sendJson(res, 200, { version: 'portage' });
  }
  if (segments.length === 1 && segments[0] === 'export' && method === 'GET') {
    return sendExport(directory, url, res);
  }

  const did = segments[0];
  if (!did || !did.startsWith('did:')) throw new HttpError(404, 'Not Found');
  const rest = segments.slice(1).join('/');

  if (method === 'POST' && rest === '') {
    const body = await readJson(req);
    await directory.submit(did, body);
    res.writeHead(200, { 'content-length': 0 });
    res.end();
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);

  switch (rest) {
    case '':
    case 'data': {
      const state = directory.resolve(did);
      if (state.status === 'unknown') throw new HttpError(404, `DID not registered: ${did}`);
      if (state.status === 'tombstoned') throw new HttpError(410, `DID not available: ${did}`);
      if (rest === 'data') return sendJson(res, 200, state.data);
      const doc = plcDataToDidDocument(did, state.data);
      const text = JSON.stringify(doc);
      res.writeHead(200, {
        'content-type': 'application/did+ld+json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return;
    }
    case 'log':
    case 'log/audit':
    case 'log/last': {
      const audit = directory.getAuditLog(did);
      if (audit.length === 0) throw new HttpError(404, `DID not registered: ${did}`);
      if (rest === 'log/audit') return sendJson(res, 200, audit);
      const valid = audit.filter((e) => !e.nullified).map((e) => e.operation);
      if (rest === 'log') return sendJson(res, 200, valid);
      return sendJson(res, 200, valid.at(-1));
    }
    default:
      throw new HttpError(404, 'Not Found');
  }
}

function sendExport(directory: PlcDirectory, url: URL, res: ServerResponse): void {
  const countParam = url.searchParams.get('count');
  const afterParam = url.searchParams.get('after');
  let count: number | undefined;
  if (countParam !== null) {
    count = Number(countParam);
    if (!Number.isInteger(count) || count < 1) throw new HttpError(400, 'count must be a positive integer');
    count = Math.min(count, MAX_EXPORT_COUNT);
  }
  if (afterParam !== null && Number.isNaN(Date.parse(afterParam))) {
    throw new HttpError(400, `after must be an ISO 8601 timestamp: ${afterParam.slice(0, 64)}`);
  }
  const entries = directory.export({ after: afterParam ?? undefined, count });
  const text = entries.map((e) => JSON.stringify(e)).join('\n');
  res.writeHead(200, {
    'content-type': 'application/jsonlines',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export interface RunningPlcDirectory {
  /** Base URL, e.g. http://127.0.0.1:2582 (what PDS_DID_PLC_URL should be set to). */
  url: string;
  port: number;
  directory: PlcDirectory;
  server: Server;
  /** Stops accepting connections, waits for open ones to finish, then closes the database. */
  close(): Promise<void>;
}

/**
 * Starts a did:plc directory on node:http with its database in `dataDirectory`. `port` 0 picks a
 * free port (read it from the result). Binds loopback unless told otherwise.
 */
export async function startPlcDirectory(opts: {
  port: number;
  host?: string;
  dataDirectory: string;
  now?: () => Date;
}): Promise<RunningPlcDirectory> {
  const host = opts.host ?? '127.0.0.1';
  const directory = new PlcDirectory({ dataDirectory: opts.dataDirectory, now: opts.now });
  const server = createServer(createPlcRequestHandler(directory));
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    directory.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    directory,
    server,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => {
          directory.close();
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
