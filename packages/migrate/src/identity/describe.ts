/**
 * `portage identity show`: a did:plc identity as its directory holds it — the document, the
 * rotation keys in priority order with who holds each, and the log with the key that signed each
 * operation. A key's holder is known when it is a local key file's key, or a key a server
 * recommends for the account (`getRecommendedDidCredentials`, asked of every PDS the log names,
 * when a password is given); anything else is said to be unknown rather than guessed.
 */
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import {
  getAtprotoSigningKey,
  getHandle,
  getPdsEndpoint,
  normalizeServiceUrl,
} from '@portage/atproto/identity/did-document';
import { PlcClient } from '@portage/atproto/plc/client';
import { type AnyPlcOperation, findPlcSigner, isPlcDid, rotationKeysOf } from '@portage/atproto/plc/operations';
import { MigrationError } from '../errors.ts';
import { describeError } from '../retry.ts';
import { PdsSession } from '../session.ts';

export interface IdentityKey {
  key: string;
  /** Who holds it: "you (<file>)", "the server <url>"; empty when unknown. */
  holders: string[];
}

export interface IdentityLogEntry {
  createdAt: string;
  cid: string;
  type: string;
  nullified: boolean;
  pds?: string;
  handle?: string;
  /** The rotation key (of the operation before) that signed it. */
  signedBy?: string;
}

export interface IdentityReport {
  did: string;
  handle?: string;
  pds?: string;
  signingKey?: string;
  rotationKeys: IdentityKey[];
  log: IdentityLogEntry[];
  /** Servers that could not be asked about their keys, with why. */
  unasked: { server: string; reason: string }[];
}

export interface DescribeEnvironment {
  fetch?: typeof fetch;
  /** Key files the user holds, by the name to show for each. */
  localKeys?: { name: string; key: ExportableSigningKey }[];
  /** The account password, to ask servers which keys they hold; undefined asks none. */
  password?: string;
}

export async function describeIdentity(did: string, plcUrl: string, env: DescribeEnvironment): Promise<IdentityReport> {
  if (!isPlcDid(did)) {
    throw new MigrationError(
      'NotPlc',
      `${did} is not a did:plc identity, so it has no rotation keys`,
      'A did:web document is changed by editing its did.json on the web server.',
    );
  }
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  const plc = new PlcClient(plcUrl, fetchImpl);
  let doc;
  let audit;
  try {
    [doc, audit] = await Promise.all([plc.getDocument(did), plc.getAuditLog(did)]);
  } catch (err) {
    throw new MigrationError(
      'DidNotResolved',
      describeError(err),
      { kind: 'need-input', field: 'did', reason: 'not-found' },
      { cause: err },
    );
  }
  const current = audit.filter((e) => !e.nullified).at(-1);
  const holders = new Map<string, string[]>();
  const hold = (key: string, who: string) => holders.set(key, [...(holders.get(key) ?? []), who]);
  for (const local of env.localKeys ?? []) hold(local.key.did(), `you (${local.name})`);

  const unasked: IdentityReport['unasked'] = [];
  const servers = [...new Set(audit.map((e) => pdsOf(e.operation)).filter((s): s is string => !!s))];
  if (env.password !== undefined) {
    for (const server of servers) {
      try {
        const session = new PdsSession(server, did, fetchImpl);
        await session.login(env.password);
        const creds = await session.query<{ rotationKeys?: string[] }>(
          'com.atproto.identity.getRecommendedDidCredentials',
          undefined,
          { attempts: 1 },
        );
        // The user-held key the server may echo back is not the server's: only its own count.
        for (const key of creds.rotationKeys ?? [])
          if (!holders.get(key)?.some((h) => h.startsWith('you'))) hold(key, `the server ${server}`);
      } catch (err) {
        unasked.push({ server, reason: describeError(err) });
      }
    }
  }

  const log: IdentityLogEntry[] = [];
  let previousKeys: string[] = [];
  for (const entry of audit) {
    const op = entry.operation;
    const allowed = previousKeys.length > 0 ? previousKeys : rotationKeysOf(op);
    const signedBy = await findPlcSigner(op, allowed);
    const pds = pdsOf(op);
    const handle = handleOf(op);
    log.push({
      createdAt: entry.createdAt,
      cid: entry.cid,
      type: op.type,
      nullified: entry.nullified,
      ...(pds ? { pds } : {}),
      ...(handle ? { handle } : {}),
      ...(signedBy ? { signedBy } : {}),
    });
    if (!entry.nullified) previousKeys = rotationKeysOf(op);
  }
  const keys = current ? rotationKeysOf(current.operation) : [];
  const handle = getHandle(doc);
  const pds = getPdsEndpoint(doc);
  const signingKey = getAtprotoSigningKey(doc);
  return {
    did,
    ...(handle ? { handle } : {}),
    ...(pds ? { pds } : {}),
    ...(signingKey ? { signingKey } : {}),
    rotationKeys: keys.map((key) => ({ key, holders: holders.get(key) ?? [] })),
    log,
    unasked,
  };
}

function pdsOf(op: AnyPlcOperation): string | undefined {
  const endpoint =
    op.type === 'plc_operation' ? op.services.atproto_pds?.endpoint : op.type === 'create' ? op.service : undefined;
  return endpoint ? normalizeServiceUrl(endpoint) : undefined;
}

function handleOf(op: AnyPlcOperation): string | undefined {
  if (op.type === 'plc_operation') return op.alsoKnownAs[0]?.replace(/^at:\/\//, '');
  if (op.type === 'create') return op.handle;
  return undefined;
}
