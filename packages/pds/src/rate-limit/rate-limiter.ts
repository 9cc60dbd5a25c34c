/**
 * Rate limits as the reference PDS applies them (on for a server with a public name, unless
 * PDS_RATE_LIMITS_ENABLED=false; off on localhost unless it is true):
 * every XRPC call counts against its client IP (3000 / 5 min); a method adds its own limits in
 * its declaration (`rateLimit`): createSession counts against `<identifier>-<ip>` (30 / 5 min,
 * 300 / day), repository writes against the account, in points (create 3, update 2, delete 1;
 * 5000 / hour, 35000 / day).
 *
 * Each limit is a fixed window per key, opened by the key's first request, as the
 * reference's in-memory limiter counts. A request over any limit gets 429 RateLimitExceeded;
 * every counted response carries the RateLimit-Limit/Remaining/Reset/Policy headers of the
 * tightest limit it touched (Reset in epoch seconds, Policy `<limit>;w=<window seconds>`), and
 * a refused one Retry-After too. Counts live in memory (one process, reset by a restart), or in
 * Redis (PDS_REDIS_SCRATCH_ADDRESS, `redis-counters.ts`) so several processes behind one
 * hostname share them.
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
  /** com.atproto.server.createAccount, per client IP. */
  createAccount: RateLimit[];
  /** com.atproto.identity.updateHandle, per account. */
  updateHandle: RateLimit[];
  /** com.atproto.repo.uploadBlob, per client IP. */
  uploadBlob: RateLimit[];
  /** Methods that mail the account a code (confirm or change the address), per method and account. */
  emailSend: RateLimit[];
  /** com.atproto.server.requestPasswordReset, per client IP. */
  passwordResetRequest: RateLimit[];
  /** Methods that check a mailed code without a session (resetPassword, deleteAccount), per method and client IP. */
  mailedCodeCheck: RateLimit[];
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
  createAccount: [{ points: 100, windowMs: 5 * MINUTE }],
  updateHandle: [
    { points: 10, windowMs: 5 * MINUTE },
    { points: 50, windowMs: DAY },
  ],
  uploadBlob: [{ points: 1000, windowMs: DAY }],
  emailSend: [
    { points: 5, windowMs: HOUR },
    { points: 15, windowMs: DAY },
  ],
  passwordResetRequest: [
    { points: 15, windowMs: HOUR },
    { points: 50, windowMs: DAY },
  ],
  mailedCodeCheck: [{ points: 50, windowMs: 5 * MINUTE }],
};

/** Points of each write action, as the reference counts them. */
export const WRITE_POINTS = { create: 3, update: 2, delete: 1 } as const;

/** The limits a method can name in its declaration (the global one applies to every call). */
export type MethodRateLimit = Exclude<keyof RateLimitPolicies, 'global'>;

/** One limit a method's calls count against, declared on the method (`rateLimit`). */
export interface RateLimitRule<Call> {
  policy: MethodRateLimit;
  /** Whose allowance the call spends. */
  key(call: Call): string;
  /** What the call costs (1 when absent); a call that costs nothing is not counted. */
  points?(call: Call): number;
}

/** A rule applied to one call. */
export interface RateLimitCharge {
  policy: MethodRateLimit;
  key: string;
  points: number;
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

/** One count to add: `points` against `key` in a window of `windowMs`. */
export interface WindowCharge {
  key: string;
  points: number;
  windowMs: number;
}

/**
 * Where window counts live. `consume` adds each charge to its key's window (opening one when
 * none is open) and answers the window's total and end, in the charges' order.
 */
export interface WindowCounterStore {
  consume(charges: readonly WindowCharge[], nowMs: number): Promise<Window[]> | Window[];
}

const SWEEP_INTERVAL_MS = MINUTE;

/** Fixed windows in this process's memory. */
export class MemoryWindowCounters implements WindowCounterStore {
  readonly #windows = new Map<string, Window>();
  #nextSweepMs = 0;

  consume(charges: readonly WindowCharge[], nowMs: number): Window[] {
    if (nowMs >= this.#nextSweepMs) this.#sweep(nowMs);
    return charges.map(({ key, points, windowMs }) => {
      let window = this.#windows.get(key);
      if (!window || window.endsAtMs <= nowMs) {
        window = { consumed: 0, endsAtMs: nowMs + windowMs };
        this.#windows.set(key, window);
      }
      window.consumed += points;
      return { ...window };
    });
  }

  /** Forgets windows that have ended, so memory follows the active clients only. */
  #sweep(nowMs: number): void {
    for (const [key, window] of this.#windows) if (window.endsAtMs <= nowMs) this.#windows.delete(key);
    this.#nextSweepMs = nowMs + SWEEP_INTERVAL_MS;
  }
}

export class RateLimiter {
  readonly #policies: RateLimitPolicies;
  readonly #counters: WindowCounterStore;
  readonly #now: () => number;

  /**
   * `policies` replaces the reference's limits policy by policy (tests shorten some);
   * `counters` is where the counts live (memory unless Redis is configured).
   */
  constructor(
    policies: Partial<RateLimitPolicies> = {},
    counters: WindowCounterStore = new MemoryWindowCounters(),
    now: () => number = Date.now,
  ) {
    this.#policies = { ...REFERENCE_RATE_LIMITS, ...policies };
    this.#counters = counters;
    this.#now = now;
  }

  /**
   * Counts a call from `ip` against the global limit and the method's `charges`, sets the
   * RateLimit-* headers of the tightest on `res`, and throws 429 RateLimitExceeded when any
   * is exceeded.
   */
  async check(ip: string, res: ServerResponse, charges: readonly RateLimitCharge[]): Promise<void> {
    const nowMs = this.#now();
    const limits: RateLimit[] = [];
    const windowCharges: WindowCharge[] = [];
    const add = (policy: keyof RateLimitPolicies, key: string, points: number) => {
      this.#policies[policy].forEach((limit, i) => {
        limits.push(limit);
        // The window's length is in the key, so a changed policy starts fresh windows.
        windowCharges.push({ key: `${policy}:${i}:${limit.windowMs}:${key}`, points, windowMs: limit.windowMs });
      });
    };
    add('global', ip, 1);
    for (const { policy, key, points } of charges) if (points > 0) add(policy, key, points);
    const windows = await this.#counters.consume(windowCharges, nowMs);
    const statuses = windows.map((window, i) => {
      const limit = limits[i]!;
      return {
        limit: limit.points,
        remaining: Math.max(0, limit.points - window.consumed),
        windowMs: limit.windowMs,
        resetAtMs: window.endsAtMs,
        exceeded: window.consumed > limit.points,
      };
    });
    const exceeded = statuses.find((s) => s.exceeded);
    const reported = exceeded ?? tightest(statuses);
    if (!reported) return;
    const headers = statusHeaders(reported);
    if (exceeded) {
      headers['Retry-After'] = String(Math.max(0, Math.ceil((exceeded.resetAtMs - nowMs) / 1000)));
      throw new XrpcError(429, 'RateLimitExceeded', 'Rate Limit Exceeded', headers);
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
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
