/**
 * `portage admin`: the operator's commands the reference's pdsadmin has (accounts, invite codes,
 * asking relays to crawl), against a running server with the admin password from the
 * environment. Exit codes: 0 done, 1 the server refused or could not be reached, 2 bad usage.
 */
import { randomBytes } from 'node:crypto';
import type { XrpcParams } from '@portage/atproto/xrpc/client';
import { parseCommandFlags, reportUsageError } from '../command-line.ts';

export const description = 'Manage a running server: accounts, takedowns, invite codes, relay crawls';

const USAGE = `Usage: portage admin <command> [arguments] [--url <server>]

Commands:
  account list                        list the accounts (handle, email, DID, status)
  account create <email> <handle>     create an account; prints its DID and a new password
  account delete <did>                delete an account and everything it holds, for good
  account takedown <did>              take an account down (no sign-in, no sync reads)
  account untakedown <did>            restore a taken-down account
  account reset-password <did>        set a new password; prints it
  create-invite-code                  create a one-use invite code; prints it
  request-crawl [--relay <host>]...   ask relays (default: PDS_CRAWLERS) to crawl this server

Options:
  --url <server>    the server (default https://$PDS_HOSTNAME, else http://localhost:2583)
  --yes             do not ask before deleting an account

Environment:
  PDS_ADMIN_PASSWORD   the server's admin password (required, except for request-crawl)
  PDS_HOSTNAME         the server's public name
  PDS_CRAWLERS         comma-separated relay URLs for request-crawl`;

/** A failure to tell the operator about in one sentence (exit 1). */
class AdminError extends Error {}

interface Client {
  query<T>(nsid: string, params?: XrpcParams): Promise<T>;
  procedure<T>(nsid: string, input?: unknown): Promise<T>;
}

export async function run(args: string[]): Promise<number> {
  const { positionals, flagArgs } = splitPositionals(args);
  const parsed = parseCommandFlags('admin', USAGE, flagArgs, {
    url: { type: 'string' },
    relay: { type: 'string', multiple: true },
    yes: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const flags = parsed.flags as Record<string, unknown>;
  const [group, action, ...rest] = positionals;
  if (!group) return reportUsageError('admin', USAGE, 'name a command');

  const hostname = process.env.PDS_HOSTNAME;
  const url = (
    (flags.url as string | undefined) ?? (hostname ? `https://${hostname}` : 'http://localhost:2583')
  ).replace(/\/+$/, '');
  try {
    new URL(url);
  } catch {
    return reportUsageError('admin', USAGE, `--url is not a URL: "${url}"`);
  }

  if (group === 'request-crawl') {
    if (action !== undefined) return reportUsageError('admin', USAGE, `unexpected argument "${action}"`);
    const relays = (flags.relay as string[] | undefined) ?? splitList(process.env.PDS_CRAWLERS);
    if (relays.length === 0) return reportUsageError('admin', USAGE, 'name a relay with --relay or set PDS_CRAWLERS');
    return guarded(() => requestCrawl(relays, hostname ?? new URL(url).host));
  }

  const password = process.env.PDS_ADMIN_PASSWORD;
  if (!password) return reportUsageError('admin', USAGE, "set PDS_ADMIN_PASSWORD to the server's admin password");
  const expect = (n: number, what: string): number | undefined =>
    rest.length === n ? undefined : reportUsageError('admin', USAGE, what);

  const { XrpcClient } = await import('@portage/atproto/xrpc/client');
  const xrpc = new XrpcClient({
    service: url,
    headers: () => ({ authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` }),
  });
  const client: Client = {
    query: (nsid, params) => xrpc.query(nsid, params),
    procedure: (nsid, input) => xrpc.procedure(nsid, input ?? {}),
  };
  const call = (work: () => Promise<void>) => guarded(work, url);

  if (group === 'create-invite-code') {
    if (action !== undefined) return reportUsageError('admin', USAGE, `unexpected argument "${action}"`);
    return call(async () => {
      const { code } = await client.procedure<{ code: string }>('com.atproto.server.createInviteCode', { useCount: 1 });
      out(code);
    });
  }
  if (group !== 'account' || action === undefined) {
    return reportUsageError('admin', USAGE, `unknown command "${[group, action].filter(Boolean).join(' ')}"`);
  }
  switch (action) {
    case 'list':
      return expect(0, '`account list` takes no arguments') ?? call(() => listAccounts(client));
    case 'create':
      return (
        expect(2, '`account create` needs an email address and a handle') ??
        call(() => createAccount(client, rest[0]!, rest[1]!))
      );
    case 'delete': {
      const bad = expect(1, '`account delete` needs a DID') ?? checkDid(rest[0]!);
      if (bad !== undefined) return bad;
      if (flags.yes !== true && !(await confirm(`Delete ${rest[0]} and everything it holds, for good? [y/N] `))) {
        process.stderr.write('portage admin: nothing deleted\n');
        return 1;
      }
      return call(async () => {
        await client.procedure('com.atproto.admin.deleteAccount', { did: rest[0] });
        out(`${rest[0]} deleted`);
      });
    }
    case 'takedown':
    case 'untakedown': {
      const bad = expect(1, `\`account ${action}\` needs a DID`) ?? checkDid(rest[0]!);
      if (bad !== undefined) return bad;
      const applied = action === 'takedown';
      return call(async () => {
        await client.procedure('com.atproto.admin.updateSubjectStatus', {
          subject: { $type: 'com.atproto.admin.defs#repoRef', did: rest[0] },
          takedown: applied ? { applied, ref: new Date().toISOString() } : { applied },
        });
        out(`${rest[0]} ${applied ? 'taken down' : 'restored'}`);
      });
    }
    case 'reset-password': {
      const bad = expect(1, '`account reset-password` needs a DID') ?? checkDid(rest[0]!);
      if (bad !== undefined) return bad;
      return call(async () => {
        const newPassword = generatePassword();
        await client.procedure('com.atproto.admin.updateAccountPassword', { did: rest[0], password: newPassword });
        out(`New password for ${rest[0]}: ${newPassword}`);
      });
    }
    default:
      return reportUsageError('admin', USAGE, `unknown command "account ${action}"`);
  }
}

/** The command words apart from the flags (with their values), which parseCommandFlags checks. */
function splitPositionals(args: string[]): { positionals: string[]; flagArgs: string[] } {
  const positionals: string[] = [];
  const flagArgs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--url' || arg === '--relay') flagArgs.push(arg, ...args.slice(i + 1, ++i + 1));
    else if (arg.startsWith('-')) flagArgs.push(arg);
    else positionals.push(arg);
  }
  return { positionals, flagArgs };
}

function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function checkDid(did: string): number | undefined {
  return /^did:[a-z]+:[a-zA-Z0-9._:%-]+$/.test(did)
    ? undefined
    : reportUsageError('admin', USAGE, `"${did}" is not a DID (did:plc:... or did:web:...)`);
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A random password in the reference's pdsadmin shape (24 characters). */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** Runs `work`, turning what the server or the network said into one sentence and exit 1. */
async function guarded(work: () => Promise<void>, url?: string): Promise<number> {
  try {
    await work();
    return 0;
  } catch (err) {
    process.stderr.write(`portage admin: ${explain(err, url)}\n`);
    return 1;
  }
}

function explain(err: unknown, url: string | undefined): string {
  if (err instanceof AdminError) return err.message;
  const e = err as { status?: number; error?: string; message?: string };
  if (typeof e.status === 'number') {
    if (e.status === 0) return `could not reach the server at ${url}: ${e.message}`;
    if (e.status === 401) return `the server at ${url} refused the admin password (check PDS_ADMIN_PASSWORD)`;
    return `the server refused: ${e.message ?? e.error} (${e.error}, HTTP ${e.status})`;
  }
  return err instanceof Error ? err.message : String(err);
}

interface AccountView {
  did: string;
  handle: string;
  email?: string;
  deactivatedAt?: string;
}

async function listAccounts(client: Client): Promise<void> {
  const rows: string[][] = [['HANDLE', 'EMAIL', 'DID', 'STATUS']];
  let cursor: string | undefined;
  do {
    const page = await client.query<{ repos: { did: string; active: boolean; status?: string }[]; cursor?: string }>(
      'com.atproto.sync.listRepos',
      { limit: 500, cursor },
    );
    if (page.repos.length > 0) {
      const { infos } = await client.query<{ infos: AccountView[] }>('com.atproto.admin.getAccountInfos', {
        dids: page.repos.map((r) => r.did),
      });
      const byDid = new Map(infos.map((i) => [i.did, i]));
      for (const repo of page.repos) {
        const info = byDid.get(repo.did);
        rows.push([
          info?.handle ?? '',
          info?.email ?? '',
          repo.did,
          repo.active ? 'active' : (repo.status ?? 'inactive'),
        ]);
      }
    }
    cursor = page.repos.length > 0 ? page.cursor : undefined;
  } while (cursor);
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const row of rows)
    out(
      row
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    );
}

async function createAccount(client: Client, email: string, handle: string): Promise<void> {
  if (!email.includes('@')) throw new AdminError(`"${email}" is not an email address (the order is: <email> <handle>)`);
  const { code } = await client.procedure<{ code: string }>('com.atproto.server.createInviteCode', { useCount: 1 });
  const password = generatePassword();
  const created = await client.procedure<{ did: string; handle: string }>('com.atproto.server.createAccount', {
    email,
    handle,
    password,
    inviteCode: code,
  });
  out(`Account created`);
  out(`Handle   : ${created.handle}`);
  out(`DID      : ${created.did}`);
  out(`Password : ${password}`);
  out('Save this password: it is not shown again.');
}

async function requestCrawl(relays: string[], hostname: string): Promise<void> {
  const { XrpcClient } = await import('@portage/atproto/xrpc/client');
  const failed: string[] = [];
  for (const relay of relays) {
    const service = (/^https?:\/\//.test(relay) ? relay : `https://${relay}`).replace(/\/+$/, '');
    try {
      await new XrpcClient({ service }).procedure('com.atproto.sync.requestCrawl', { hostname });
      out(`${service} asked to crawl ${hostname}`);
    } catch (err) {
      failed.push(`${service} (${(err as Error).message})`);
    }
  }
  if (failed.length > 0) throw new AdminError(`these relays did not take the request: ${failed.join('; ')}`);
}
