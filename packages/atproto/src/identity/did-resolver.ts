/**
 * DID -> DID document, for the two methods atproto allows: did:plc from a PLC directory and
 * did:web from `https://<host>/.well-known/did.json` (http only for localhost, which is what
 * development servers use). Results are cached briefly because one migration resolves the same
 * DID many times; `noCache` forces a fresh read when a change is expected (after a PLC update).
 */
import { type DidDocument, parseDidDocument } from './did-document.ts';
import { IdentityError } from './errors.ts';

export interface DidResolverOptions {
  /** PLC directory base URL, e.g. https://plc.directory */
  plcUrl: string;
  fetch?: typeof fetch;
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number;
  /** How long a resolved document is reused (default 60 s; 0 disables the cache). */
  cacheTtlMs?: number;
  /**
   * A cache shared with other processes (a server's Redis), consulted after this process's own;
   * its failures only cost a fresh resolution.
   */
  sharedCache?: SharedDidCache;
}

/** Cached documents as text, each kept for `ttlMs`; every method may reject. */
export interface SharedDidCache {
  get(did: string): Promise<string | null | undefined>;
  set(did: string, value: string, ttlMs: number): Promise<void>;
  delete(did: string): Promise<void>;
}

const PLC_DID = /^did:plc:[a-z2-7]{24}$/;
const WEB_DID = /^did:web:([a-zA-Z0-9.-]+(?:%3[aA][0-9]{1,5})?)$/;

export class DidResolver {
  readonly plcUrl: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #ttl: number;
  readonly #cache = new Map<string, { doc: DidDocument; at: number }>();
  readonly #shared: SharedDidCache | undefined;

  constructor(opts: DidResolverOptions) {
    this.plcUrl = opts.plcUrl.replace(/\/+$/, '');
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    this.#ttl = opts.cacheTtlMs ?? 60_000;
    this.#shared = opts.sharedCache;
  }

  /**
   * `noCache` reads afresh; `maxAgeMs` accepts a cached document only when it is younger than
   * that (for answers that should be close to current without a round trip each time).
   */
  async resolve(did: string, opts: { noCache?: boolean; maxAgeMs?: number } = {}): Promise<DidDocument> {
    const cached = this.#cache.get(did);
    const maxAge = opts.noCache ? 0 : Math.min(opts.maxAgeMs ?? this.#ttl, this.#ttl);
    if (cached && Date.now() - cached.at < maxAge) return cached.doc;
    if (maxAge > 0 && this.#shared) {
      const shared = await this.#readShared(did);
      if (shared && Date.now() - shared.at < maxAge) {
        this.#cache.set(did, shared);
        return shared.doc;
      }
    }
    const doc = await this.#fetchDocument(did, documentUrl(did, this.plcUrl));
    if (this.#ttl > 0) {
      const entry = { doc, at: Date.now() };
      this.#cache.set(did, entry);
      await this.#shared?.set(did, JSON.stringify(entry), this.#ttl).catch(() => {});
    }
    return doc;
  }

  /**
   * Drops the cached document of `did` (it is known to have changed), here at once and in the
   * shared cache when the returned promise settles (it never rejects).
   */
  forget(did: string): Promise<void> {
    this.#cache.delete(did);
    return this.#shared?.delete(did).catch(() => {}) ?? Promise.resolve();
  }

  async #readShared(did: string): Promise<{ doc: DidDocument; at: number } | undefined> {
    try {
      const text = await this.#shared!.get(did);
      if (!text) return undefined;
      const entry = JSON.parse(text) as { doc: unknown; at: number };
      return { doc: parseDidDocument(entry.doc, did), at: Number(entry.at) };
    } catch {
      return undefined;
    }
  }

  async #fetchDocument(did: string, url: string): Promise<DidDocument> {
    let res: Response;
    try {
      res = await this.#fetch(url, {
        headers: { accept: 'application/did+ld+json, application/json' },
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      throw new IdentityError(
        'DidResolutionUnavailable',
        `could not fetch the DID document of ${did} from ${url}: ${message(err)}`,
        {
          cause: err,
        },
      );
    }
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      throw new IdentityError('DidNotFound', `${did} does not exist (${url} answered ${res.status})`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new IdentityError('DidResolutionUnavailable', `${url} answered HTTP ${res.status} for ${did}`);
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      throw new IdentityError('InvalidDidDocument', `${url} did not return JSON for ${did}`, { cause: err });
    }
    return parseDidDocument(json, did);
  }
}

/** Where the document of a DID lives; throws IdentityError for DIDs atproto does not support. */
export function documentUrl(did: string, plcUrl: string): string {
  if (did.startsWith('did:plc:')) {
    if (!PLC_DID.test(did)) throw new IdentityError('InvalidDid', `not a valid did:plc: "${did}"`);
    return `${plcUrl.replace(/\/+$/, '')}/${did}`;
  }
  if (did.startsWith('did:web:')) {
    const match = WEB_DID.exec(did);
    if (!match) throw new IdentityError('InvalidDid', `not a valid did:web (atproto allows a hostname only): "${did}"`);
    const host = decodeURIComponent(match[1]!);
    const hostname = host.split(':')[0]!.toLowerCase();
    const local = hostname === 'localhost' || hostname === '127.0.0.1';
    return `${local ? 'http' : 'https'}://${host}/.well-known/did.json`;
  }
  throw new IdentityError('InvalidDid', `unsupported DID (atproto uses did:plc and did:web): "${did}"`);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
