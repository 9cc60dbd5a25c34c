/**
 * The connection to the scratch Redis (PDS_REDIS_SCRATCH_ADDRESS, PDS_REDIS_SCRATCH_PASSWORD,
 * as the reference names them): shared rate-limit windows and DID documents. `ioredis` is
 * imported on first use, so a server without Redis never loads it.
 *
 * Commands fail at once while the connection is down (no offline queue, a short command
 * timeout): callers fall back to what they can do alone rather than wait, and the client keeps
 * reconnecting in the background.
 */
import type { Redis } from 'ioredis';

const COMMAND_TIMEOUT_MS = 1000;

export class RedisScratch {
  readonly #address: string;
  readonly #password: string | undefined;
  #client: Promise<Redis> | undefined;
  #closed = false;

  constructor(address: string, password?: string) {
    this.#address = address;
    this.#password = password;
  }

  #connect(): Promise<Redis> {
    this.#client ??= (async () => {
      const { Redis } = await import('ioredis');
      const url = /^rediss?:\/\//.test(this.#address) ? this.#address : `redis://${this.#address}`;
      const client = new Redis(url, {
        password: this.#password,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: COMMAND_TIMEOUT_MS,
        connectTimeout: COMMAND_TIMEOUT_MS,
        retryStrategy: (times) => Math.min(100 * times, 2000),
        lazyConnect: true,
      });
      // Connection errors surface as failed commands; the client retries by itself.
      client.on('error', () => {});
      await client.connect().catch(() => {});
      return client;
    })();
    return this.#client;
  }

  async eval(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    const client = await this.#connect();
    return client.eval(script, keys.length, ...keys, ...args);
  }

  async get(key: string): Promise<string | null> {
    return (await this.#connect()).get(key);
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await (await this.#connect()).set(key, value, 'PX', ttlMs);
  }

  async del(key: string): Promise<void> {
    await (await this.#connect()).del(key);
  }

  /** Get, set and delete under `prefix` (e.g. the shared DID-document cache). */
  namespace(prefix: string): {
    get(key: string): Promise<string | null>;
    set(key: string, value: string, ttlMs: number): Promise<void>;
    delete(key: string): Promise<void>;
  } {
    return {
      get: (key) => this.get(prefix + key),
      set: (key, value, ttlMs) => this.set(prefix + key, value, ttlMs),
      delete: (key) => this.del(prefix + key),
    };
  }

  async close(): Promise<void> {
    if (this.#closed || !this.#client) return;
    this.#closed = true;
    const client = await this.#client;
    client.disconnect();
  }
}
