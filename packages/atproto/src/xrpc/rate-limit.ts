/**
 * How long a server asks us to wait, read from its rate-limit headers. Servers disagree on the
 * unit of `RateLimit-Reset`: the IETF draft says seconds from now, the reference PDS sends a Unix
 * time in seconds. A value larger than any sane delay (a billion seconds) can only be a timestamp.
 */

/** Milliseconds to wait before retrying, from Retry-After or RateLimit-Reset; undefined if neither says. */
export function retryDelayFromHeaders(headers: Headers, now: number = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after');
  if (retryAfter !== null) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const reset = headers.get('ratelimit-reset');
  if (reset !== null) {
    const value = Number(reset);
    if (Number.isFinite(value) && value >= 0) {
      return value > 1e9 ? Math.max(0, value * 1000 - now) : value * 1000;
    }
  }
  return undefined;
}

/**
 * When a successful answer says the budget is spent (`RateLimit-Remaining: 0`), the delay until it
 * refills, so a client can pause before it gets a 429 rather than after.
 */
export function exhaustedBudgetDelay(headers: Headers, now: number = Date.now()): number | undefined {
  const remaining = headers.get('ratelimit-remaining');
  if (remaining === null || Number(remaining) > 0) return undefined;
  return retryDelayFromHeaders(headers, now);
}
