/**
 * OAuth scopes of the atproto profile, and what a granted scope string allows. A token always
 * carries `atproto`; the transitional scopes stand in for broad grants (`transition:generic`:
 * every repository write, blob and service call except chat, `transition:chat.bsky`: chat,
 * `transition:email`: reading the email address), and the permission scopes name exactly what
 * an app may do:
 *
 *   repo:<collection>[?action=create|update|delete]   (collection may be *; default all actions)
 *   repo?collection=a&collection=b&action=create
 *   blob:<mime>  or  blob?accept=image/*&accept=video/*
 *   rpc:<nsid>?aud=<did#service>                       (nsid may be *, aud may be *, not both)
 *   account:<email|repo|status>[?action=read|manage]   (default read; manage includes read)
 *   identity:<handle|*>
 */
import { isValidNsid } from '@portage/atproto/syntax/nsid';

const REPO_ACTIONS = ['create', 'update', 'delete'] as const;
export type RepoAction = (typeof REPO_ACTIONS)[number];
const ACCOUNT_ATTRS = ['email', 'repo', 'status'] as const;
const ACCOUNT_ACTIONS = ['read', 'manage'] as const;
const IDENTITY_ATTRS = ['handle', '*'] as const;
const TRANSITIONAL = ['transition:generic', 'transition:chat.bsky', 'transition:email'] as const;

interface RepoGrant {
  kind: 'repo';
  collections: string[];
  actions: RepoAction[];
}
interface BlobGrant {
  kind: 'blob';
  accept: string[];
}
interface RpcGrant {
  kind: 'rpc';
  lxm: string[];
  aud: string;
}
interface AccountGrant {
  kind: 'account';
  attr: string;
  actions: string[];
}
interface IdentityGrant {
  kind: 'identity';
  attr: string;
}
type Grant = RepoGrant | BlobGrant | RpcGrant | AccountGrant | IdentityGrant;

/** One scope token split into its name, positional value and query parameters. */
function splitScope(token: string): { name: string; positional?: string; params: URLSearchParams } {
  const q = token.indexOf('?');
  const head = q < 0 ? token : token.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : token.slice(q + 1));
  const colon = head.indexOf(':');
  if (colon < 0) return { name: head, params };
  return { name: head.slice(0, colon), positional: decodeURIComponent(head.slice(colon + 1)), params };
}

/** `positional` and the repeated `key` parameter together (a value may be given either way, not both). */
function values(positional: string | undefined, params: URLSearchParams, key: string): string[] | undefined {
  const listed = params.getAll(key);
  if (positional !== undefined && listed.length > 0) return undefined;
  return positional !== undefined ? [positional] : listed;
}

function onlyKeys(params: URLSearchParams, allowed: string[]): boolean {
  for (const key of params.keys()) if (!allowed.includes(key)) return false;
  return true;
}

const MIME_RE = /^(\*\/\*|[a-z0-9][\w.+-]*\/(\*|[a-z0-9][\w.+-]*))$/i;
const SERVICE_REF_RE = /^did:[a-z]+:[a-zA-Z0-9._:%-]+#[a-zA-Z0-9._~-]+$/;

/** The grant a permission scope token stands for, or undefined when it is not a valid one. */
export function parsePermission(token: string): Grant | undefined {
  let parts;
  try {
    parts = splitScope(token);
  } catch {
    return undefined;
  }
  const { name, positional, params } = parts;
  switch (name) {
    case 'repo': {
      if (!onlyKeys(params, ['collection', 'action'])) return undefined;
      const collections = values(positional, params, 'collection');
      if (!collections?.length || !collections.every((c) => c === '*' || isValidNsid(c))) return undefined;
      const actions = params.getAll('action');
      if (!actions.every((a) => (REPO_ACTIONS as readonly string[]).includes(a))) return undefined;
      return {
        kind: 'repo',
        collections,
        actions: actions.length ? (actions as RepoAction[]) : [...REPO_ACTIONS],
      };
    }
    case 'blob': {
      if (!onlyKeys(params, ['accept'])) return undefined;
      const accept = values(positional, params, 'accept');
      if (!accept?.length || !accept.every((m) => MIME_RE.test(m))) return undefined;
      return { kind: 'blob', accept: accept.map((m) => m.toLowerCase()) };
    }
    case 'rpc': {
      if (!onlyKeys(params, ['lxm', 'aud'])) return undefined;
      const lxm = values(positional, params, 'lxm');
      const aud = params.getAll('aud');
      if (!lxm?.length || !lxm.every((m) => m === '*' || isValidNsid(m))) return undefined;
      if (aud.length !== 1 || !(aud[0] === '*' || SERVICE_REF_RE.test(aud[0]!))) return undefined;
      if (aud[0] === '*' && lxm.includes('*')) return undefined;
      return { kind: 'rpc', lxm, aud: aud[0]! };
    }
    case 'account': {
      if (!onlyKeys(params, ['attr', 'action'])) return undefined;
      const attrs = values(positional, params, 'attr');
      if (attrs?.length !== 1 || !(ACCOUNT_ATTRS as readonly string[]).includes(attrs[0]!)) return undefined;
      const actions = params.getAll('action');
      if (!actions.every((a) => (ACCOUNT_ACTIONS as readonly string[]).includes(a))) return undefined;
      return { kind: 'account', attr: attrs[0]!, actions: actions.length ? actions : ['read'] };
    }
    case 'identity': {
      if (!onlyKeys(params, ['attr'])) return undefined;
      const attrs = values(positional, params, 'attr');
      if (attrs?.length !== 1 || !(IDENTITY_ATTRS as readonly string[]).includes(attrs[0]!)) return undefined;
      return { kind: 'identity', attr: attrs[0]! };
    }
    default:
      return undefined;
  }
}

/** Whether this server understands `token` as a scope (unknown scopes are refused at PAR). */
export function isKnownScope(token: string): boolean {
  return token === 'atproto' || (TRANSITIONAL as readonly string[]).includes(token) || !!parsePermission(token);
}

/** Whether `mime` is matched by an accept pattern (`*\/*`, `image/*`, `image/png`). */
function mimeMatches(pattern: string, mime: string): boolean {
  if (pattern === '*/*') return true;
  const m = mime.toLowerCase();
  if (pattern.endsWith('/*')) return m.startsWith(pattern.slice(0, -1));
  return pattern === m;
}

/** What a granted scope string allows; every check answers for one concrete action. */
export class OAuthPermissions {
  readonly scope: string;
  readonly #tokens: Set<string>;
  readonly #grants: Grant[];

  constructor(scope: string) {
    this.scope = scope;
    this.#tokens = new Set(scope.split(' ').filter(Boolean));
    this.#grants = [];
    for (const token of this.#tokens) {
      const grant = parsePermission(token);
      if (grant) this.#grants.push(grant);
    }
  }

  has(token: string): boolean {
    return this.#tokens.has(token);
  }

  get #generic(): boolean {
    return this.#tokens.has('transition:generic');
  }

  allowsRepo(collection: string, action: RepoAction): boolean {
    if (this.#generic) return true;
    return this.#grants.some(
      (g) =>
        g.kind === 'repo' &&
        g.actions.includes(action) &&
        (g.collections.includes('*') || g.collections.includes(collection)),
    );
  }

  allowsBlob(mime: string): boolean {
    if (this.#generic) return true;
    return this.#grants.some((g) => g.kind === 'blob' && g.accept.some((p) => mimeMatches(p, mime)));
  }

  /** `aud` is the service as `did#serviceId`, the way rpc scopes name it. */
  allowsRpc(aud: string, lxm: string): boolean {
    const chat = lxm.startsWith('chat.bsky.');
    if (this.#generic && !chat) return true;
    if (chat && this.#tokens.has('transition:chat.bsky')) return true;
    return this.#grants.some(
      (g) => g.kind === 'rpc' && (g.aud === '*' || g.aud === aud) && (g.lxm.includes('*') || g.lxm.includes(lxm)),
    );
  }

  allowsAccount(attr: 'email' | 'repo' | 'status', action: 'read' | 'manage'): boolean {
    if (attr === 'email' && action === 'read' && this.#tokens.has('transition:email')) return true;
    return this.#grants.some(
      (g) => g.kind === 'account' && g.attr === attr && (g.actions.includes('manage') || g.actions.includes(action)),
    );
  }

  allowsIdentity(attr: 'handle' | '*'): boolean {
    return this.#grants.some((g) => g.kind === 'identity' && (g.attr === '*' || g.attr === attr));
  }

  /** Plain sentences for the consent page, one per thing the app asks for. */
  describe(): string[] {
    const lines: string[] = [];
    if (this.#tokens.has('transition:generic')) {
      lines.push('Read and write all of your posts, likes, follows and other records, and upload media');
      lines.push('Use other services (like the Bluesky app view) as you');
    }
    if (this.#tokens.has('transition:chat.bsky')) lines.push('Read and send your direct messages');
    if (this.#tokens.has('transition:email')) lines.push('See your email address');
    for (const g of this.#grants) {
      switch (g.kind) {
        case 'repo':
          lines.push(
            `${g.actions.map((a) => a[0]!.toUpperCase() + a.slice(1)).join(', ')} records in ${
              g.collections.includes('*') ? 'every collection' : g.collections.join(', ')
            }`,
          );
          break;
        case 'blob':
          lines.push(`Upload files of type ${g.accept.join(', ')}`);
          break;
        case 'rpc':
          lines.push(
            `Call ${g.lxm.includes('*') ? 'any method' : g.lxm.join(', ')} on ${g.aud === '*' ? 'any service' : g.aud} as you`,
          );
          break;
        case 'account':
          lines.push(`${g.actions.includes('manage') ? 'Manage' : 'See'} your account's ${g.attr}`);
          break;
        case 'identity':
          lines.push(g.attr === '*' ? 'Change your identity (handle and DID document)' : 'Change your handle');
          break;
      }
    }
    if (lines.length === 0) lines.push('Know who you are (your DID and handle)');
    return lines;
  }
}
