/**
 * "Who are you": a handle or a DID to the account's DID, handle and current server. Handles are
 * looked up the way the spec says, in the browser: DNS TXT through DNS-over-HTTPS and the
 * well-known file on the handle's host (which often lacks CORS); when both fail, the PDS that
 * serves this page is asked (its resolveHandle), since a server can do the DNS a page cannot.
 */
import { getHandle, getPdsEndpoint } from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { dohResolveTxt } from '@portage/atproto/identity/dns-over-https';
import { HandleResolver, isValidHandle } from '@portage/atproto/identity/handle-resolver';
import { XrpcClient } from '@portage/atproto/xrpc/client';
import type { PageConfig } from './config.ts';

export interface Account {
  did: string;
  handle: string | undefined;
  pds: string;
}

/** A problem the user can fix, worded as what to do next. */
export class WizardError extends Error {}

export async function resolveAccount(input: string, config: PageConfig): Promise<Account> {
  const text = input.trim().replace(/^@/, '');
  let did: string | undefined;
  let handle: string | undefined;
  if (text.startsWith('did:')) {
    did = text;
  } else {
    handle = text.toLowerCase();
    if (!isValidHandle(handle)) {
      throw new WizardError(`"${text}" is not a handle. Enter a handle like alice.bsky.social, or a DID.`);
    }
    did = await new HandleResolver({ resolveTxt: dohResolveTxt({ endpoint: config.dohUrl }), timeoutMs: 8000 })
      .resolve(handle)
      .catch(() => undefined);
    if (!did && config.target) did = await resolveOnServer(config.target, handle);
    if (!did) {
      throw new WizardError(
        `No account was found for the handle ${handle}. Check its spelling, or enter the account's DID (did:plc:…) instead.`,
      );
    }
  }
  let doc;
  try {
    doc = await new DidResolver({ plcUrl: config.plcUrl }).resolve(did, { noCache: true });
  } catch {
    throw new WizardError(
      `The identity ${did} could not be looked up. Check the DID, or your connection, and press Continue again.`,
    );
  }
  const docHandle = getHandle(doc);
  if (handle && docHandle?.toLowerCase() !== handle) {
    throw new WizardError(
      `The handle ${handle} points to ${did}, but that identity names ${docHandle ? `the handle ${docHandle}` : 'no handle'}. Enter the account's current handle or its DID.`,
    );
  }
  const pds = getPdsEndpoint(doc);
  if (!pds) throw new WizardError(`The identity ${did} names no server. This account cannot be moved from here.`);
  return { did, handle: docHandle, pds };
}

async function resolveOnServer(service: string, handle: string): Promise<string | undefined> {
  try {
    const out = await new XrpcClient({ service }).query<{ did?: string }>(
      'com.atproto.identity.resolveHandle',
      { handle },
      { timeoutMs: 15_000 },
    );
    return typeof out?.did === 'string' ? out.did : undefined;
  } catch {
    return undefined;
  }
}

export interface ServerInfo {
  did: string;
  inviteCodeRequired: boolean;
  availableUserDomains: string[];
}

export async function describeServer(service: string): Promise<ServerInfo> {
  let out: { did?: unknown; inviteCodeRequired?: unknown; availableUserDomains?: unknown };
  try {
    out = await new XrpcClient({ service }).query('com.atproto.server.describeServer', undefined, {
      timeoutMs: 15_000,
    });
  } catch {
    throw new WizardError(`${service} does not answer as an AT Protocol server. Check the address of the new PDS.`);
  }
  if (typeof out?.did !== 'string') {
    throw new WizardError(`${service} does not answer as an AT Protocol server. Check the address of the new PDS.`);
  }
  return {
    did: out.did,
    inviteCodeRequired: out.inviteCodeRequired === true,
    availableUserDomains: Array.isArray(out.availableUserDomains)
      ? out.availableUserDomains.filter((d): d is string => typeof d === 'string')
      : [],
  };
}

/** The old handle kept where the server accepts its domain, else its first label on the server's first domain. */
export function suggestHandle(oldHandle: string, server: ServerInfo | undefined): string {
  const domains = server?.availableUserDomains ?? [];
  if (!domains.length || domains.some((d) => oldHandle.endsWith(d))) return oldHandle;
  return `${oldHandle.split('.')[0]}${domains[0]}`;
}
