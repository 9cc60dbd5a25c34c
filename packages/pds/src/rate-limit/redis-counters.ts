/**
 * Rate-limit windows in Redis (PDS_REDIS_SCRATCH_ADDRESS), so every process behind one hostname
 * counts against the same limits. One round trip per request: a script adds each charge to its
 * key and opens the key's window (its expiry) when the key is new, as the memory counters do.
 *
 * When Redis cannot be reached the limits go on in this process's memory (each process then
 * counts alone) rather than refusing or letting everything through; the change is logged both
 * ways and `/metrics` shows it (portage_rate_limits_shared).
 */
import type { Logger } from '../logger.ts';
import type { RedisScratch } from '../redis/scratch.ts';
import { MemoryWindowCounters, type WindowCharge, type WindowCounterStore } from './rate-limiter.ts';

const KEY_PREFIX = 'portage:rl:';

// KEYS: the windows' keys; ARGV: points and window length (ms) of each, in turn.
// Answers each window's total and the milliseconds left in it.
const CONSUME_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  local consumed = redis.call('INCRBY', key, tonumber(ARGV[2 * i - 1]))
  local left = redis.call('PTTL', key)
  if left < 0 then
    left = tonumber(ARGV[2 * i])
    redis.call('PEXPIRE', key, left)
  end
  out[#out + 1] = consumed
  out[#out + 1] = left
end
return out
`;

export class RedisWindowCounters implements WindowCounterStore {
  readonly #redis: RedisScratch;
  readonly #fallback = new MemoryWindowCounters();
  readonly #logger: Logger;
  #shared = true;

  constructor(redis: RedisScratch, logger: Logger) {
    this.#redis = redis;
    this.#logger = logger;
  }

  /** False while the counts are kept in memory because Redis is unreachable. */
  get shared(): boolean {
    return this.#shared;
  }

  async consume(charges: readonly WindowCharge[], nowMs: number): Promise<{ consumed: number; endsAtMs: number }[]> {
    try {
      const args: (string | number)[] = [];
      for (const c of charges) args.push(c.points, c.windowMs);
      const answer = (await this.#redis.eval(
        CONSUME_SCRIPT,
        charges.map((c) => KEY_PREFIX + c.key),
        args,
      )) as number[];
      if (!this.#shared) {
        this.#shared = true;
        this.#logger.info('rate limits are shared through Redis again');
      }
      return charges.map((_, i) => ({ consumed: Number(answer[2 * i]), endsAtMs: nowMs + Number(answer[2 * i + 1]) }));
    } catch (err) {
      if (this.#shared) {
        this.#shared = false;
        this.#logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'Redis is unreachable: rate limits are counted in this process only until it is back',
        );
      }
      return this.#fallback.consume(charges, nowMs);
    }
  }
}
