/**
 * Handle -> DID (https://atproto.com/specs/handle): a DNS TXT record `_atproto.<handle>` holding
 * `did=<did>`, or `https://<handle>/.well-known/atproto-did` holding the bare DID. Both are tried
 * at once and DNS wins when both answer, as the spec orders them. The TXT lookup is injected
 * (node:dns in Node, DNS-over-HTTPS in browsers) so this file runs everywhere.
 *
 * A handle is only a claim: callers must still check the DID document names the handle back.
 */
import { IdentityError } from './errors.ts';

export interface HandleResolverOptions {
  /** TXT records of a name, each record's strings joined; [] when there are none. */
  resolveTxt: (name: string) => Promise<string[]>;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const HANDLE = /^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const DID = /^did:[a-z]+:[a-zA-Z0-9._:%-]+$/;

export function isValidHandle(handle: string): boolean {
  return handle.length <= 253 && HANDLE.test(handle);
}

export class HandleResolver {
  readonly #resolveTxt: (name: string) => Promise<string[]>;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(opts: HandleResolverOptions) {
    this.#resolveTxt = opts.resolveTxt;
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The DID the handle points to, or undefined when neither method finds one. */
  async resolve(handle: string): Promise<string | undefined> {
    const normalized = handle.trim().replace(/^@/, '').toLowerCase();
    if (!isValidHandle(normalized)) throw new IdentityError('InvalidHandle', `not a valid handle: "${handle}"`);
    const dns = this.#fromDns(normalized);
    const http = this.#fromWellKnown(normalized);
    const fromDns = await dns;
    if (fromDns) {
      http.catch(() => {});
      return fromDns;
    }
    return await http;
  }

  async #fromDns(handle: string): Promise<string | undefined> {
    let records: string[];
    try {
      records = await this.#resolveTxt(`_atproto.${handle}`);
    } catch {
      return undefined;
    }
    // More than one did= record is ambiguous; the spec says to treat that as no answer.
    const dids = records.filter((r) => r.startsWith('did=')).map((r) => r.slice(4).trim());
    return dids.length === 1 && DID.test(dids[0]!) ? dids[0] : undefined;
  }

  async #fromWellKnown(handle: string): Promise<string | undefined> {
    try {
      const res = await this.#fetch(`https://${handle}/.well-known/atproto-did`, {
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'follow',
      });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      const text = (await res.text()).trim().split('\n')[0]!.trim();
      return DID.test(text) ? text : undefined;
    } catch {
      return undefined;
    }
  }
}
