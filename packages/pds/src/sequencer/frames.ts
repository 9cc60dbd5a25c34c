/**
 * Event-stream framing (atproto event-stream spec): every WebSocket binary message is two
 * concatenated DAG-CBOR objects, a header and a body. Messages have header {op: 1, t: '#<type>'};
 * errors have header {op: -1} and body {error, message?}, after which the server closes.
 */
import { decodeFirst, encode } from '@atcute/cbor';
import { SequencerError } from './events.ts';

export function messageFrame(type: string, body: Record<string, unknown>): Uint8Array {
  return concat(encode({ op: 1, t: `#${type}` }), encode(body));
}

export function errorFrame(error: string, message?: string): Uint8Array {
  const body: Record<string, unknown> = { error };
  if (message !== undefined) body.message = message;
  return concat(encode({ op: -1 }), encode(body));
}

/** #info OutdatedCursor: the cursor is older than the backfill window; events resume at its start. */
export function outdatedCursorFrame(): Uint8Array {
  return messageFrame('info', {
    name: 'OutdatedCursor',
    message: 'Requested cursor exceeded limit. Possibly missing events',
  });
}

export interface DecodedFrame {
  op: number;
  t?: string;
  body: Record<string, unknown>;
}

/** Splits a frame into header and body; used by tests, benchmarks and recovery checks. */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  const [header, rest] = decodeFirst(frame);
  const [body, tail] = decodeFirst(rest);
  if (tail.length !== 0) throw new SequencerError('InvalidFrame', `frame has ${tail.length} trailing bytes`);
  if (typeof header !== 'object' || header === null || typeof header.op !== 'number') {
    throw new SequencerError('InvalidFrame', 'frame header is not {op, t?}');
  }
  return { op: header.op, t: header.t, body };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
