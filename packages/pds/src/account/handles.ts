/**
 * Which handles an account on this PDS may take. Syntax comes from the protocol library;
 * the service rules (one label under a hosted domain, 3-18 characters, not a reserved name)
 * follow the reference so a client's sign-up form behaves the same against either server.
 */
import { findHandleProblem } from '@portage/atproto/syntax/handle';
import { InvalidRequest } from '../xrpc/errors.ts';

// Names people would mistake for the service itself, its staff, or infrastructure.
const RESERVED = new Set([
  'about',
  'abuse',
  'account',
  'accounts',
  'admin',
  'administrator',
  'api',
  'app',
  'apps',
  'atproto',
  'auth',
  'billing',
  'blog',
  'bluesky',
  'bsky',
  'cdn',
  'contact',
  'dashboard',
  'dev',
  'did',
  'docs',
  'download',
  'email',
  'feed',
  'feeds',
  'ftp',
  'help',
  'helpdesk',
  'home',
  'host',
  'hostmaster',
  'info',
  'invite',
  'invites',
  'jobs',
  'legal',
  'login',
  'logout',
  'mail',
  'mailer',
  'moderation',
  'moderator',
  'mod',
  'news',
  'noc',
  'noreply',
  'no-reply',
  'official',
  'owner',
  'pds',
  'plc',
  'portage',
  'postmaster',
  'press',
  'privacy',
  'register',
  'relay',
  'root',
  'security',
  'server',
  'service',
  'settings',
  'signin',
  'signup',
  'staff',
  'status',
  'support',
  'system',
  'team',
  'terms',
  'test',
  'tos',
  'trust',
  'safety',
  'webmaster',
  'www',
  'xrpc',
]);

// Top-level domains that can never resolve publicly (RFC 6761 and friends).
const DISALLOWED_TLDS = ['.local', '.arpa', '.invalid', '.localhost', '.internal', '.example', '.alt', '.onion'];

export function isReservedHandleName(name: string): boolean {
  return RESERVED.has(name);
}

/** Lower-cases and checks syntax; a 400 InvalidHandle names the problem. */
export function normalizeHandle(input: string): string {
  const handle = input.trim().toLowerCase();
  const problem = findHandleProblem(handle);
  if (problem) throw InvalidRequest(`Invalid handle: ${problem}`, 'InvalidHandle');
  return handle;
}

/** The service domain (e.g. ".test") the handle is under, if any. */
export function serviceDomainOf(handle: string, domains: readonly string[]): string | undefined {
  return domains.find((d) => handle.endsWith(d) && handle.length > d.length);
}

export interface HandleCheck {
  handle: string;
  /** True when the handle is under one of this PDS's domains. */
  hosted: boolean;
}

/**
 * Normalizes and validates a requested handle. Hosted handles must obey the service rules;
 * other handles (custom domains) are allowed only when `allowExternal` (an existing account
 * proving control by DNS or HTTPS, which the caller checks).
 */
export function checkHandle(input: string, domains: readonly string[], opts: { allowExternal: boolean }): HandleCheck {
  const handle = normalizeHandle(input);
  const domain = serviceDomainOf(handle, domains);
  if (!domain) {
    if (DISALLOWED_TLDS.some((tld) => handle.endsWith(tld))) {
      throw InvalidRequest('Handle TLD is invalid or disallowed', 'InvalidHandle');
    }
    if (!opts.allowExternal) throw InvalidRequest('Not a supported handle domain', 'UnsupportedDomain');
    return { handle, hosted: false };
  }
  const front = handle.slice(0, handle.length - domain.length);
  if (front.includes('.')) throw InvalidRequest('Invalid characters in handle', 'InvalidHandle');
  if (front.length < 3) throw InvalidRequest('Handle too short', 'InvalidHandle');
  if (front.length > 18) throw InvalidRequest('Handle too long', 'InvalidHandle');
  if (isReservedHandleName(front)) throw InvalidRequest('Reserved handle', 'HandleNotAvailable');
  return { handle, hosted: true };
}
