/**
 * Retrying calls the way a long migration needs: network errors and 5xx are retried with
 * exponential backoff and jitter; a 429 waits exactly as long as the server's RateLimit-Reset or
 * Retry-After says (and makes every other request to that server wait too, through RateGate);
 * everything else (4xx) fails at once, since repeating it cannot help. A budget that refills only
 * later than a run should wait (a daily limit) is not waited for: BudgetSpent ends the run with
 * the time to go on.
 */
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { exhaustedBudgetDelay, retryDelayFromHeaders } from '@portage/atproto/xrpc/rate-limit';
import { MigrationError } from './errors.ts';

export interface RetryOptions {
  /** Attempts in total (default 8). */
  attempts?: number;
  /** First backoff in ms (default 250), doubled each time up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Shared pause for one server: a 429 on one request holds back the others. */
  gate?: RateGate;
  /** The gate of the server that answered `err`, when one call talks to two servers (default: gate). */
  gateFor?: (err: unknown) => RateGate | undefined;
  /** Called before each wait, e.g. to emit a warning or shrink a pool. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
}

/** The longest pause a run waits out by default; a server that asks for more ends the run (BudgetSpent). */
export const DEFAULT_LONGEST_WAIT_MS = 5 * 60_000;

/**
 * A server's budget refills only at `until` (epoch ms), later than a run should wait: the run
 * stops there, saying when to go on.
 */
export class BudgetSpent extends Error {
  override name = 'BudgetSpent';
  readonly until: number;
  readonly service: string;
  constructor(until: number, service: string) {
    super(`${service} takes no more of these requests until ${new Date(until).toISOString()}`);
    this.until = until;
    this.service = service;
  }
}

/** A pause shared by all requests to one server, set when it says "slow down". */
export class RateGate {
  readonly service: string;
  /** Pauses up to this long are waited out; a longer one makes every request throw BudgetSpent. */
  readonly longestWaitMs: number;
  #until = 0;
  #spentUntil = 0;
  constructor(service = 'the server', longestWaitMs = DEFAULT_LONGEST_WAIT_MS) {
    this.service = service;
    this.longestWaitMs = longestWaitMs;
  }
  /** Hold every request until `ms` from now (never shortens an existing pause). */
  pauseFor(ms: number): void {
    if (ms > this.longestWaitMs) this.#spentUntil = Math.max(this.#spentUntil, Date.now() + ms);
    else this.#until = Math.max(this.#until, Date.now() + ms);
  }
  /** Pause if a successful answer says the budget is spent. */
  observe(headers: Headers): void {
    const delay = exhaustedBudgetDelay(headers);
    if (delay !== undefined) this.pauseFor(delay);
  }
  /** When the budget refills, if a server said it is spent for longer than a run waits. */
  get spentUntil(): number | undefined {
    return this.#spentUntil > Date.now() ? this.#spentUntil : undefined;
  }
  async wait(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const spent = this.spentUntil;
      if (spent !== undefined) throw new BudgetSpent(spent, this.service);
      const left = this.#until - Date.now();
      if (left <= 0) return;
      await sleep(left, signal);
    }
  }
}

/** True when repeating the same request may succeed. Errors that are not XRPC errors are stream/network failures. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof XrpcClientError) return err.retryable;
  // A MigrationError already says what the user does next; Node's system errors carry a `code` too.
  if (err instanceof PermanentError || err instanceof BudgetSpent || err instanceof MigrationError) return false;
  // A body stream that broke mid-way surfaces as a TypeError ("terminated") or an AbortError.
  return err instanceof TypeError || (err instanceof Error && (err.name === 'AbortError' || 'code' in err));
}

/** Marks a failure that retrying cannot fix (e.g. a blob whose bytes do not match its CID after several tries). */
export class PermanentError extends Error {}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 8;
  const base = opts.baseDelayMs ?? 250;
  const max = opts.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    await opts.gate?.wait(opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !isRetryable(err) || opts.signal?.aborted) throw err;
      let delay = Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      if (err instanceof XrpcClientError && err.status === 429) {
        const asked = retryDelayFromHeaders(err.headers);
        // The server knows when the budget refills; waiting less only earns another 429.
        delay = asked !== undefined ? asked + 100 : Math.max(delay, 5_000);
        const gate = opts.gateFor?.(err) ?? opts.gate;
        if (gate && delay > gate.longestWaitMs) {
          gate.pauseFor(delay);
          throw new BudgetSpent(Date.now() + delay, gate.service);
        }
        delay = Math.min(delay, 15 * 60_000);
        opts.gate?.pauseFor(delay);
      }
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, opts.signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
