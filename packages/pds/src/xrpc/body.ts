/**
 * Request bodies. JSON bodies are read into memory under a byte limit (checked against
 * Content-Length up front and again while reading, since the header may lie or be absent);
 * binary bodies are handed to the endpoint as a stream so a blob upload or repo import never
 * sits in memory whole. Content-Encoding gzip/deflate/br is undone transparently; the limit
 * applies to the decoded bytes, which is what a compression bomb would inflate.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { InvalidRequest, PayloadTooLarge, UnsupportedMediaType } from './errors.ts';

/** The media type of a request, lower-cased, without parameters; undefined when absent. */
export function requestContentType(req: IncomingMessage): string | undefined {
  const header = req.headers['content-type'];
  if (!header) return undefined;
  const type = header.split(';')[0]!.trim().toLowerCase();
  return type || undefined;
}

/** Whether the request carries a body at all (HTTP/1.1 framing: a length or chunked). */
export function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length.trim() !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header.trim())) throw InvalidRequest('invalid content-length');
  return Number(header);
}

function decoded(req: IncomingMessage): Readable {
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  switch (encoding) {
    case 'identity':
    case '':
      return req;
    case 'gzip':
    case 'x-gzip':
      return req.pipe(createGunzip());
    case 'deflate':
      return req.pipe(createInflate());
    case 'br':
      return req.pipe(createBrotliDecompress());
    default:
      throw UnsupportedMediaType(`unsupported content-encoding: ${encoding}`);
  }
}

/**
 * The decoded body as a stream of chunks that fails with 413 PayloadTooLarge as soon as more
 * than `maxBytes` have arrived. Nothing beyond the limit is ever buffered.
 */
export async function* requestBodyStream(req: IncomingMessage, maxBytes: number): AsyncGenerator<Uint8Array> {
  const length = declaredLength(req);
  const encoded = req.headers['content-encoding'] !== undefined;
  if (!encoded && length !== undefined && length > maxBytes) throw PayloadTooLarge('request entity too large');
  let total = 0;
  const source = decoded(req);
  try {
    for await (const chunk of source) {
      const bytes = chunk as Uint8Array;
      total += bytes.byteLength;
      if (total > maxBytes) throw PayloadTooLarge('request entity too large');
      yield bytes;
    }
  } catch (err) {
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_')) {
      throw InvalidRequest(`Could not decode request body: ${err.message}`);
    }
    throw err;
  } finally {
    if (source !== req) source.destroy();
    if (!req.complete) discardRest(req, maxBytes);
  }
}

/**
 * When the consumer stops early (limit hit, handler error), the rest of the upload is read
 * and thrown away so the client, still sending, gets to read our error response instead of
 * a connection reset. Past a cap the connection is cut: nobody may keep us reading forever.
 */
function discardRest(req: IncomingMessage, maxBytes: number): void {
  const cap = Math.max(maxBytes, 8 * 1024 * 1024);
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.byteLength;
    if (discarded > cap) req.destroy();
  });
  req.resume();
}

/** The whole body as one byte array, under a limit. */
export async function readRequestBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of requestBodyStream(req, maxBytes)) {
    chunks.push(chunk);
    total += chunk.byteLength;
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** A JSON body: parsed, or a 400 InvalidRequest saying why it could not be. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const bytes = await readRequestBody(req, maxBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw InvalidRequest('Request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw InvalidRequest(`Request body is not valid JSON: ${(err as Error).message}`);
  }
}
