/**
 * HTTP client for a did:plc directory (plc.directory, the embedded Portage directory, or any
 * other implementation of the same API). Failures are PlcErrors: `NotFound` for an unknown (404)
 * or deactivated (410) DID, `Rejected` when the directory refuses an operation (4xx, with its
 * message), `Unavailable` for network errors, 5xx and bodies that are not what the API promises.
 */
import type { DidDocument } from '../identity/did-document.ts';
import { PlcError } from './errors.ts';
import type { AnyPlcOperation, PlcDocumentData } from './operations.ts';

export { PlcError, type PlcErrorCode } from './errors.ts';

/** One entry of a DID's audit log (and one line of /export). */
export interface PlcAuditEntry {
  did: string;
  operation: AnyPlcOperation;
  cid: string;
  nullified: boolean;
  createdAt: string;
}

export class PlcClient {
  readonly baseUrl: string;
  readonly #fetch: typeof fetch;

  constructor(baseUrl: string, fetchImpl?: typeof fetch) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (err) {
      throw new PlcError('Unavailable', `PLC directory URL is not a URL: ${baseUrl}`, { cause: err });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new PlcError('Unavailable', `PLC directory URL must be http(s): ${baseUrl}`);
    }
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  /** The DID document (GET /{did}). */
  async getDocument(did: string): Promise<DidDocument> {
    return (await this.#getJson(did, '')) as DidDocument;
  }

  /** The DID's current PLC state: rotation keys, verification methods, alsoKnownAs, services. */
  async getDocumentData(did: string): Promise<PlcDocumentData> {
    return (await this.#getJson(did, '/data')) as PlcDocumentData;
  }

  /** The DID's valid operations, oldest first (nullified ones left out). */
  async getOperationLog(did: string): Promise<AnyPlcOperation[]> {
    return (await this.#getJson(did, '/log')) as AnyPlcOperation[];
  }

  /** The latest valid operation: what the next operation's `prev` must name (by its CID). */
  async getLastOperation(did: string): Promise<AnyPlcOperation> {
    return (await this.#getJson(did, '/log/last')) as AnyPlcOperation;
  }

  /** Every operation ever accepted for the DID, with CIDs, timestamps and nullification. */
  async getAuditLog(did: string): Promise<PlcAuditEntry[]> {
    const body = await this.#getJson(did, '/log/audit');
    if (!Array.isArray(body)) throw new PlcError('Unavailable', `PLC audit log of ${did} is not a JSON array`);
    return body as PlcAuditEntry[];
  }

  /** Submits a signed operation; resolves once the directory has accepted it. */
  async submitOperation(did: string, op: AnyPlcOperation): Promise<void> {
    const res = await this.#request(`/${encodeURIComponent(did)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(op),
    });
    if (res.ok) {
      await res.body?.cancel();
      return;
    }
    throw await errorFromResponse(res, did);
  }

  /** A page of the directory-wide operation export (entries created strictly after `after`). */
  async export(opts: { after?: string; count?: number } = {}): Promise<PlcAuditEntry[]> {
    const params = new URLSearchParams();
    if (opts.after !== undefined) params.set('after', opts.after);
    if (opts.count !== undefined) params.set('count', String(opts.count));
    const query = params.size > 0 ? `?${params}` : '';
    const res = await this.#request(`/export${query}`, { method: 'GET' });
    if (!res.ok) throw await errorFromResponse(res, 'export');
    const text = await res.text();
    const entries: PlcAuditEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(JSON.parse(line) as PlcAuditEntry);
      } catch (err) {
        throw new PlcError('Unavailable', 'PLC export returned a line that is not JSON', { cause: err });
      }
    }
    return entries;
  }

  async #getJson(did: string, suffix: string): Promise<unknown> {
    const res = await this.#request(`/${encodeURIComponent(did)}${suffix}`, { method: 'GET' });
    if (!res.ok) throw await errorFromResponse(res, did);
    try {
      return await res.json();
    } catch (err) {
      throw new PlcError('Unavailable', `PLC directory sent a body that is not JSON for ${did}${suffix}`, {
        cause: err,
      });
    }
  }

  async #request(path: string, init: RequestInit): Promise<Response> {
    try {
      return await this.#fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      throw new PlcError('Unavailable', `PLC directory ${this.baseUrl} could not be reached: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function errorFromResponse(res: Response, subject: string): Promise<PlcError> {
  let message = '';
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { message?: unknown };
      message = typeof body.message === 'string' ? body.message : text;
    } catch {
      message = text;
    }
  } catch {
    // No readable body: the status alone says what happened.
  }
  message = message.slice(0, 500);
  const status = res.status;
  if (status === 404 || status === 410) {
    const what = status === 410 ? 'is deactivated (tombstoned)' : 'is not registered';
    return new PlcError('NotFound', message || `${subject} ${what}`, { status });
  }
  if (status >= 400 && status < 500) {
    return new PlcError('Rejected', message || `PLC directory rejected the request for ${subject} (${status})`, {
      status,
    });
  }
  return new PlcError(
    'Unavailable',
    `PLC directory failed for ${subject} (HTTP ${status})${message ? `: ${message}` : ''}`,
    {
      status,
    },
  );
}
