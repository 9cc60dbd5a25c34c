/**
 * Rate limits as the reference PDS applies them (on when PDS_RATE_LIMITS_ENABLED=true):
 * every XRPC call counts against its client IP (3000 / 5 min); createSession also against
 * `<identifier>-<ip>` (30 / 5 min, 300 / day); repository writes against the account, in
 * points (create 3, update 2, delete 1; 5000 / hour, 35000 / day).
 *
 * Each limit is a fixed window per key, opened by the key's first request, as the
 * reference's in-memory limiter counts. A request over any limit gets 429 RateLimitExceeded;
 * every counted response carries the RateLimit-Limit/Remaining/Reset/Policy headers of the
 * tightest limit it touched (Reset in epoch seconds, Policy `<limit>;w=<window seconds>`), and
 * a refused one Retry-After too. Counts live in memory: one process, reset by a restart.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { XrpcError } from '../xrpc/errors.ts';

export interface RateLimit {
  /** Points allowed per window. */
  points: number;
  windowMs: number;
}

export interface RateLimitPolicies {
  /** Every XRPC call, per client IP. */
  global: RateLimit[];
  /** com.atproto.server.createSession, per identifier and client IP. */
  createSession: RateLimit[];
  /** Repository writes, in points, per account. */
  repoWrite: RateLimit[];
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The reference PDS's limits. */
export const REFERENCE_RATE_LIMITS: RateLimitPolicies = {
  global: [{ points: 3000, windowMs: 5 * MINUTE }],
  createSession: [
    { points: 30, windowMs: 5 * MINUTE },
    { points: 300, windowMs: DAY },
  ],
  repoWrite: [
    { points: 5000, windowMs: HOUR },
    { points: 35000, windowMs: DAY },
  ],
};

/** Points of each write action, as the reference counts them. */
const WRITE_POINTS = { create: 3, update: 2, delete: 1 } as const;

/** What the server knows of a request once its auth and body are parsed. */
export interface RateLimitedCall {
  nsid: string;
  req: IncomingMessage;
  res: ServerResponse;
  /** The verified auth (`did` when an account is signed in). */
  auth: unknown;
  /** The parsed JSON body, if any. */
  input: unknown;
}

interface Status {
  limit: number;
  remaining: number;
  windowMs: number;
  /** When the window ends (ms since the epoch). */
  resetAtMs: number;
}

interface Window {
  consumed: number;
  endsAtMs: number;
}

/** Fixed windows for one limit, keyed by client. */
class WindowCounter {
  readonly #windows = new Map<string, Window>();
  readonly limit: RateLimit;

  constructor(limit: RateLimit) {
    this.limit = limit;
  }

  consume(key: string, points: number, nowMs: number): Status & { exceeded: boolean } {
    let window = this.#windows.get(key);
    if (!window || window.endsAtMs <= nowMs) {
      window = { consumed: 0, endsAtMs: nowMs + this.limit.windowMs };
      this.#windows.set(key, window);
    }
    window.consumed += points;
    return {
      limit: this.limit.points,
      remaining: Math.max(0, this.limit.points - window.consumed),
      windowMs: this.limit.windowMs,
      resetAtMs: window.endsAtMs,
      exceeded: window.consumed > this.limit.points,
    };
  }

  /** Forgets windows that have ended, so memory follows the active clients only. */
  sweep(nowMs: number): void {
    for (const [key, window] of this.#windows) if (window.endsAtMs <= nowMs) this.#windows.delete(key);
  }
}

const SWEEP_INTERVAL_MS = MINUTE;

export class RateLimiter {
  readonly #global: WindowCounter[];
  readonly #createSession: WindowCounter[];
  readonly #repoWrite: WindowCounter[];
  readonly #now: () => number;
  #nextSweepMs: number;

  constructor(policies: RateLimitPolicies = REFERENCE_RATE_LIMITS, now: () => number = Date.now) {
    this.#global = policies.global.map((l) => new WindowCounter(l));
    this.#createSession = policies.createSession.map((l) => new WindowCounter(l));
    this.#repoWrite = policies.repoWrite.map((l) => new WindowCounter(l));
    this.#now = now;
    this.#nextSweepMs = now() + SWEEP_INTERVAL_MS;
  }

  /**
   * Counts the call against every limit that applies, sets the RateLimit-* headers of the
   * tightest, and throws 429 RateLimitExceeded when any is exceeded.
   */
  check(call: RateLimitedCall): void {
    const nowMs = this.#now();
    if (nowMs >= this.#nextSweepMs) this.#sweep(nowMs);
    const ip = clientIp(call.req);
    const statuses: (Status & { exceeded: boolean })[] = [];
    for (const counter of this.#global) statuses.push(counter.consume(ip, 1, nowMs));
    if (call.nsid === 'com.atproto.server.createSession') {
      const identifier = stringField(call.input, 'identifier') ?? '';
      for (const counter of this.#createSession) statuses.push(counter.consume(`${identifier}-${ip}`, 1, nowMs));
    }
    const points = writePoints(call.nsid, call.input);
    const did = stringField(call.auth, 'did');
    if (points > 0 && did) {
      for (const counter of this.#repoWrite) statuses.push(counter.consume(did, points, nowMs));
    }
    const exceeded = statuses.find((s) => s.exceeded);
    const reported = exceeded ?? tightest(statuses);
    if (!reported) return;
    const headers = statusHeaders(reported);
    if (exceeded) {
      headers['Retry-After'] = String(Math.max(0, Math.ceil((exceeded.resetAtMs - nowMs) / 1000)));
      throw new XrpcError(429, 'RateLimitExceeded', 'Rate Limit Exceeded', headers);
    }
    for (const [name, value] of Object.entries(headers)) call.res.setHeader(name, value);
  }

  #sweep(nowMs: number): void {
    for (const counter of [...this.#global, ...this.#createSession, ...this.#repoWrite]) counter.sweep(nowMs);
    this.#nextSweepMs = nowMs + SWEEP_INTERVAL_MS;
  }
}

function tightest(statuses: Status[]): Status | undefined {
  let lowest: Status | undefined;
  for (const status of statuses) if (!lowest || status.remaining < lowest.remaining) lowest = status;
  return lowest;
}

function statusHeaders(status: Status): Record<string, string> {
  return {
    'RateLimit-Limit': String(status.limit),
    'RateLimit-Remaining': String(status.remaining),
    'RateLimit-Reset': String(Math.floor(status.resetAtMs / 1000)),
    'RateLimit-Policy': `${status.limit};w=${Math.floor(status.windowMs / 1000)}`,
  };
}

function stringField(value: unknown, field: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = (value as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : undefined;
}

/** Points a repository write costs; 0 for anything else. */
function writePoints(nsid: string, input: unknown): number {
  switch (nsid) {
    case 'com.atproto.repo.createRecord':
      return WRITE_POINTS.create;
    case 'com.atproto.repo.putRecord':
      return WRITE_POINTS.update;
    case 'com.atproto.repo.deleteRecord':
      return WRITE_POINTS.delete;
    case 'com.atproto.repo.applyWrites': {
      const writes = typeof input === 'object' && input !== null ? (input as { writes?: unknown }).writes : undefined;
      if (!Array.isArray(writes)) return 0;
      let points = 0;
      for (const write of writes) {
        const type = stringField(write, '$type');
        if (type === 'com.atproto.repo.applyWrites#create') points += WRITE_POINTS.create;
        else if (type === 'com.atproto.repo.applyWrites#update') points += WRITE_POINTS.update;
        else points += WRITE_POINTS.delete;
      }
      return points;
    }
    default:
      return 0;
  }
}

/**
 * The client's address. Behind a reverse proxy on this machine or the private network
 * (loopback, link-local, unique-local, as the reference trusts) the proxy's
 * X-Forwarded-For names the client: the right-most address that is not such a proxy.
 */
export function clientIp(req: IncomingMessage): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '');
  if (!isTrustedProxy(peer)) return peer;
  const forwarded = req.headers['x-forwarded-for'];
  const header = Array.isArray(forwarded) ? forwarded.join(',') : forwarded;
  if (!header) return peer;
  const hops = header
    .split(',')
    .map((h) => normalizeIp(h.trim()))
    .filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) if (!isTrustedProxy(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}

function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice('::ffff:'.length) : ip.toLowerCase();
}

function isTrustedProxy(ip: string): boolean {
  if (ip.includes('.')) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return (
      a === 127 || // loopback
      (a === 169 && b === 254) || // link-local
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) // unique-local (private) ranges
    );
  }
  return ip === '::1' || ip.startsWith('fe80:') || ip.startsWith('fc') || ip.startsWith('fd');
}
