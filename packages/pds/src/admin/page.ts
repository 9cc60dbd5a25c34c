/**
 * The admin page (/admin): plain server-rendered HTML and POST forms, no script. Signing in with
 * the admin password starts a session kept in memory (a random id in an HttpOnly, SameSite=Strict
 * cookie, never the password); each form carries the session's own token as well, so a request
 * from another site is refused even by a browser that ignores SameSite. Everything is done through
 * the same services the com.atproto.admin.* methods call.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Account } from '../account/account-manager.ts';
import type { AppContext } from '../context.ts';
import { clientIp } from '../rate-limit/rate-limiter.ts';
import type { PlainRoute, PlainRouteContext } from '../routes.ts';

const COOKIE = 'portage_admin';
const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
const PAGE_SIZE = 25;
const MAX_FORM_BYTES = 16 * 1024;
/** Request-counter samples older than this are dropped; the rate is read over the last minute or so. */
const SAMPLE_WINDOW_MS = 5 * 60 * 1000;
/** Wrong passwords a client may try per window before every attempt is refused until it ends. */
const MAX_WRONG_PASSWORDS = 10;
const WRONG_PASSWORD_WINDOW_MS = 15 * 60 * 1000;

interface AdminSession {
  csrf: string;
  expiresAt: number;
}

/** Sessions, request-counter samples and refused sign-ins, per server (one AppContext). */
interface AdminState {
  sessions: Map<string, AdminSession>;
  samples: { at: number; total: number }[];
  /** Wrong passwords by client address, in the window that began with the first. */
  wrongPasswords: Map<string, { count: number; windowEndsAt: number }>;
}

const states = new WeakMap<AppContext, AdminState>();

function stateOf(ctx: AppContext): AdminState {
  let state = states.get(ctx);
  if (!state) {
    state = { sessions: new Map(), samples: [], wrongPasswords: new Map() };
    states.set(ctx, state);
  }
  return state;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === COOKIE) return rest.join('=');
  }
  return undefined;
}

function currentSession(c: PlainRouteContext): AdminSession | undefined {
  const id = cookieOf(c.req);
  if (!id) return undefined;
  const { sessions } = stateOf(c.ctx);
  const session = sessions.get(id);
  if (!session) return undefined;
  if (session.expiresAt <= Date.now()) {
    sessions.delete(id);
    return undefined;
  }
  return session;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function secureCookie(ctx: AppContext): boolean {
  return ctx.config.publicUrl.startsWith('https:');
}

function sessionCookie(ctx: AppContext, value: string, maxAgeSeconds: number): string {
  return [
    `${COOKIE}=${value}`,
    'Path=/admin',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(secureCookie(ctx) ? ['Secure'] : []),
  ].join('; ');
}

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

function sendHtml(c: PlainRouteContext, status: number, html: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(html, 'utf8');
  c.res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.byteLength,
  });
  c.res.end(c.req.method === 'HEAD' ? undefined : body);
}

function redirect(c: PlainRouteContext, location: string, headers: Record<string, string> = {}): void {
  c.res.writeHead(303, { ...SECURITY_HEADERS, ...headers, Location: location, 'Content-Length': 0 });
  c.res.end();
}

function layout(title: string, main: string, session?: AdminSession): string {
  const nav = session
    ? `<nav aria-label="Admin"><a href="/admin">Overview</a> <a href="/admin/invites">Invite codes</a>
<form method="post" action="/admin/sign-out" class="inline">${csrfField(session)}<button type="submit">Sign out</button></form></nav>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Portage admin</title>
<link rel="stylesheet" href="/admin/style.css">
</head>
<body>
<header><p class="brand">Portage admin</p>${nav}</header>
<main>
<h1>${escapeHtml(title)}</h1>
${main}
</main>
</body>
</html>
`;
}

function csrfField(session: AdminSession): string {
  return `<input type="hidden" name="csrf" value="${escapeHtml(session.csrf)}">`;
}

function signInPage(message?: string): string {
  return layout(
    'Sign in',
    `${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/admin/sign-in">
<label for="password">Admin password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>`,
  );
}

function accountStatus(account: Account): string {
  if (account.takedownRef !== null && account.takedownRef !== undefined) return 'taken down';
  if (account.deactivatedAt) return 'deactivated';
  return 'active';
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

async function metricValues(
  ctx: AppContext,
  name: string,
): Promise<{ value: number; labels: Record<string, unknown> }[]> {
  const metric = ctx.metrics.registry.getSingleMetric(name);
  if (!metric) return [];
  return (await metric.get()).values as { value: number; labels: Record<string, unknown> }[];
}

/** Requests per minute from the request counter, sampled whenever the figures are read. */
async function requestsPerMinute(ctx: AppContext): Promise<number | undefined> {
  const total = (await metricValues(ctx, 'portage_requests_total')).reduce((sum, v) => sum + v.value, 0);
  const now = Date.now();
  const state = stateOf(ctx);
  state.samples = state.samples.filter((s) => now - s.at <= SAMPLE_WINDOW_MS);
  state.samples.push({ at: now, total });
  // The sample nearest a minute ago (but at least a few seconds old), for a rate that moves.
  const older = state.samples.filter((s) => now - s.at >= 5_000);
  if (older.length === 0) return undefined;
  const base = older.reduce((best, s) => (Math.abs(now - s.at - 60_000) < Math.abs(now - best.at - 60_000) ? s : best));
  return ((total - base.total) * 60_000) / (now - base.at);
}

async function figures(ctx: AppContext): Promise<string> {
  const byStatus = ctx.accountManager.countAccountsByStatus();
  const sum = async (name: string, filter?: (labels: Record<string, unknown>) => boolean) =>
    (await metricValues(ctx, name)).filter((v) => !filter || filter(v.labels)).reduce((s, v) => s + v.value, 0);
  const repoBytes = await sum('portage_database_bytes', (labels) => labels.database === 'actor stores');
  const blobBytes = await sum('portage_blob_bytes');
  const subscribers = await sum('portage_firehose_subscribers');
  const rate = await requestsPerMinute(ctx);
  const row = (name: string, value: string) => `<div><dt>${name}</dt><dd>${escapeHtml(value)}</dd></div>`;
  return `<section aria-labelledby="figures"><h2 id="figures">Server</h2><dl class="figures">
${row('Active accounts', String(byStatus.active))}
${row('Deactivated', String(byStatus.deactivated))}
${row('Taken down', String(byStatus.takendown))}
${row('Repository bytes', formatBytes(repoBytes))}
${row('Blob bytes', formatBytes(blobBytes))}
${row('Firehose subscribers', String(subscribers))}
${row('Requests per minute', rate === undefined ? 'measuring…' : rate.toFixed(1))}
</dl></section>`;
}

function accountLink(account: Account): string {
  return `/admin/account?did=${encodeURIComponent(account.did)}`;
}

async function overviewPage(c: PlainRouteContext, session: AdminSession): Promise<string> {
  const query = (c.search.get('q') ?? '').trim();
  const cursor = c.search.get('after') ?? undefined;
  const accounts = c.ctx.accountManager.findAccounts({ query, cursor, limit: PAGE_SIZE });
  const rows = accounts
    .map(
      (a) => `<li><a href="${escapeHtml(accountLink(a))}">${escapeHtml(a.handle ?? a.did)}</a>
<span class="muted">${escapeHtml(a.email ?? 'no email')} · ${accountStatus(a)}</span></li>`,
    )
    .join('\n');
  const next =
    accounts.length === PAGE_SIZE
      ? `<p><a href="/admin?${new URLSearchParams({ q: query, after: accounts.at(-1)!.did }).toString()}">Next page</a></p>`
      : '';
  return layout(
    'Overview',
    `${await figures(c.ctx)}
<section aria-labelledby="accounts"><h2 id="accounts">Accounts</h2>
<form method="get" action="/admin" role="search">
<label for="q">Handle or email starts with</label>
<input id="q" name="q" type="search" value="${escapeHtml(query)}">
<button type="submit">Search</button>
</form>
${accounts.length ? `<ul class="accounts">${rows}</ul>` : '<p>No accounts found.</p>'}
${cursor ? `<p><a href="/admin?${new URLSearchParams({ q: query }).toString()}">First page</a></p>` : ''}
${next}
</section>`,
    session,
  );
}

function accountPage(c: PlainRouteContext, session: AdminSession, account: Account, notice?: string): string {
  const { ctx } = c;
  let repo = 'no repository';
  let blobs = '–';
  try {
    const counts = ctx.actorStore.repoStatusCounts(account.did);
    repo = `${counts.records} records, ${counts.blocks} blocks`;
    blobs = formatBytes(ctx.actorStore.blobBytes(account.did));
  } catch {
    // An account moving in may have no repository yet.
  }
  const invites = ctx.accountManager.getAccountInviteCodes(account.did, { includeUsed: true });
  const status = accountStatus(account);
  const takenDown = status === 'taken down';
  const row = (name: string, value: string) => `<div><dt>${name}</dt><dd>${escapeHtml(value)}</dd></div>`;
  const action = takenDown
    ? `<form method="post" action="/admin/account/restore">${csrfField(session)}
<input type="hidden" name="did" value="${escapeHtml(account.did)}"><button type="submit">Restore account</button></form>`
    : `<form method="post" action="/admin/account/takedown">${csrfField(session)}
<input type="hidden" name="did" value="${escapeHtml(account.did)}"><button type="submit" class="danger">Take down account</button></form>`;
  return layout(
    account.handle ?? account.did,
    `${notice ? `<p class="notice" role="status">${escapeHtml(notice)}</p>` : ''}
<dl class="figures details">
${row('Status', status)}
${row('DID', account.did)}
${row('Email', account.email ?? 'none')}
${row('Created', account.createdAt)}
${row('Repository', repo)}
${row('Blob bytes', blobs)}
${row('Signed-in sessions', String(ctx.accountManager.countLiveSessions(account.did)))}
${row('Invite codes', invites.length ? invites.map((i) => `${i.code} (${i.available} left)`).join(', ') : 'none')}
</dl>
${action}
<p><a href="/admin">Back to accounts</a></p>`,
    session,
  );
}

function invitesPage(c: PlainRouteContext, session: AdminSession, created?: string): string {
  const { codes } = c.ctx.accountManager.listInviteCodes({ sort: 'recent', limit: 100 });
  const rows = codes
    .map(
      (i) =>
        `<li><code>${escapeHtml(i.code)}</code> <span class="muted">${i.available} left · for ${escapeHtml(i.forAccount)}${i.disabled ? ' · disabled' : ''}</span></li>`,
    )
    .join('\n');
  return layout(
    'Invite codes',
    `${created ? `<p class="notice" role="status">New code: <code>${escapeHtml(created)}</code></p>` : ''}
<form method="post" action="/admin/invites">${csrfField(session)}
<label for="uses">Uses</label>
<input id="uses" name="uses" type="number" min="1" max="1000" value="1" required>
<button type="submit">Create invite code</button>
</form>
${codes.length ? `<ul class="invites">${rows}</ul>` : '<p>No invite codes yet.</p>'}`,
    session,
  );
}

const STYLE = `*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1b1b1b;background:#fafafa}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.75rem 1rem;background:#1d3557;color:#fff}
header a{color:#fff}
.brand{margin:0;font-weight:600}
nav{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
main{max-width:48rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;overflow-wrap:anywhere}
h2{font-size:1.2rem}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input[type=password],input[type=search],input[type=number]{width:100%;max-width:24rem;padding:.5rem;font:inherit;border:1px solid #555;border-radius:4px}
button{margin:.5rem 0;padding:.5rem 1rem;font:inherit;border:1px solid #1d3557;border-radius:4px;background:#1d3557;color:#fff;cursor:pointer}
header button{background:#fff;color:#1d3557}
button.danger{background:#a4161a;border-color:#a4161a}
:focus-visible{outline:3px solid #f4a261;outline-offset:2px}
.inline{display:inline}
.error{color:#a4161a;font-weight:600}
.notice{background:#e7f1e7;padding:.5rem;border-radius:4px}
.muted{display:block;color:#4a4a4a;font-size:.9rem;overflow-wrap:anywhere}
ul.accounts,ul.invites{list-style:none;padding:0}
ul.accounts li,ul.invites li{padding:.5rem 0;border-bottom:1px solid #ddd;overflow-wrap:anywhere}
dl.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.5rem}
dl.details{grid-template-columns:1fr}
dl.figures div{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.5rem}
dt{font-size:.85rem;color:#4a4a4a}
dd{margin:0;font-weight:600;overflow-wrap:anywhere}
a{color:#1d3557}
`;

/** Runs `then` for a signed-in admin whose form token matches; otherwise back to sign-in, or 403. */
async function withForm(
  c: PlainRouteContext,
  then: (session: AdminSession, form: URLSearchParams) => Promise<void> | void,
): Promise<void> {
  const session = currentSession(c);
  const form = await readForm(c.req);
  if (!session) return redirect(c, '/admin');
  if (!sameSecret(form.get('csrf') ?? '', session.csrf)) {
    return sendHtml(c, 403, layout('Refused', '<p>This form has expired. <a href="/admin">Start again</a>.</p>'));
  }
  await then(session, form);
}

function withAccount(c: PlainRouteContext, session: AdminSession, did: string, then: (account: Account) => void): void {
  const account = did ? c.ctx.accountManager.getAccount(did) : undefined;
  if (!account) {
    return sendHtml(c, 404, layout('Not found', '<p>No such account. <a href="/admin">Back</a></p>', session));
  }
  then(account);
}

export function adminRoutes(): PlainRoute[] {
  return [
    {
      path: '/admin/style.css',
      async handler(c) {
        const body = Buffer.from(STYLE, 'utf8');
        c.res.writeHead(200, {
          'Content-Type': 'text/css; charset=utf-8',
          'Content-Length': body.byteLength,
          'Cache-Control': 'no-cache',
        });
        c.res.end(c.req.method === 'HEAD' ? undefined : body);
      },
    },
    {
      path: '/admin',
      async handler(c) {
        const session = currentSession(c);
        if (!session) return sendHtml(c, 200, signInPage());
        sendHtml(c, 200, await overviewPage(c, session));
      },
    },
    {
      path: '/admin/sign-in',
      methods: ['POST'],
      async handler(c) {
        const form = await readForm(c.req);
        const password = form.get('password') ?? '';
        const ip = clientIp(c.req);
        const { wrongPasswords } = stateOf(c.ctx);
        const now = Date.now();
        for (const [key, w] of wrongPasswords) if (w.windowEndsAt <= now) wrongPasswords.delete(key);
        const wrong = wrongPasswords.get(ip);
        // Past the limit even the right password waits: guessing must not be able to go on.
        if (wrong && wrong.count >= MAX_WRONG_PASSWORDS) {
          const minutes = Math.ceil((wrong.windowEndsAt - now) / 60_000);
          c.ctx.logger.warn({ ip }, 'admin page sign-in refused: too many wrong passwords');
          c.res.setHeader('Retry-After', String(Math.ceil((wrong.windowEndsAt - now) / 1000)));
          return sendHtml(
            c,
            429,
            signInPage(`Too many wrong passwords from your address. Try again in ${minutes} minutes.`),
          );
        }
        if (!sameSecret(password, c.ctx.config.adminPassword)) {
          if (wrong) wrong.count++;
          else wrongPasswords.set(ip, { count: 1, windowEndsAt: now + WRONG_PASSWORD_WINDOW_MS });
          c.ctx.logger.warn({ ip }, 'admin page sign-in refused: wrong password');
          return sendHtml(c, 401, signInPage('That is not the admin password.'));
        }
        const id = randomBytes(32).toString('base64url');
        const { sessions } = stateOf(c.ctx);
        for (const [key, s] of sessions) if (s.expiresAt <= now) sessions.delete(key);
        sessions.set(id, { csrf: randomBytes(32).toString('base64url'), expiresAt: now + SESSION_TTL_MS });
        c.ctx.logger.info({ ip }, 'admin page signed in');
        redirect(c, '/admin', { 'Set-Cookie': sessionCookie(c.ctx, id, SESSION_TTL_MS / 1000) });
      },
    },
    {
      path: '/admin/sign-out',
      methods: ['POST'],
      async handler(c) {
        await withForm(c, () => {
          stateOf(c.ctx).sessions.delete(cookieOf(c.req)!);
          redirect(c, '/admin', { 'Set-Cookie': sessionCookie(c.ctx, '', 0) });
        });
      },
    },
    {
      path: '/admin/account',
      async handler(c) {
        const session = currentSession(c);
        if (!session) return redirect(c, '/admin');
        const notice = c.search.get('done') ?? undefined;
        withAccount(c, session, c.search.get('did') ?? '', (account) =>
          sendHtml(c, 200, accountPage(c, session, account, notice)),
        );
      },
    },
    ...(['takedown', 'restore'] as const).map((what): PlainRoute => ({
      path: `/admin/account/${what}`,
      methods: ['POST'],
      async handler(c) {
        await withForm(c, (session, form) =>
          withAccount(c, session, form.get('did') ?? '', (account) => {
            // The reference's takedown reference when none is given: when it was applied.
            c.ctx.accountManager.setTakedown(account.did, what === 'takedown' ? new Date().toISOString() : null);
            c.ctx.logger.info({ ip: clientIp(c.req), did: account.did }, `admin page: account ${what}`);
            const done = what === 'takedown' ? 'Account taken down.' : 'Account restored.';
            redirect(c, `${accountLink(account)}&${new URLSearchParams({ done }).toString()}`);
          }),
        );
      },
    })),
    {
      path: '/admin/invites',
      methods: ['GET', 'POST'],
      async handler(c) {
        if (c.req.method !== 'POST') {
          const session = currentSession(c);
          if (!session) return redirect(c, '/admin');
          return sendHtml(c, 200, invitesPage(c, session, c.search.get('created') ?? undefined));
        }
        await withForm(c, (session, form) => {
          const uses = Math.min(1000, Math.max(1, Number.parseInt(form.get('uses') ?? '1', 10) || 1));
          const [created] = c.ctx.accountManager.createInviteCodes({
            forAccounts: ['admin'],
            count: 1,
            useCount: uses,
            createdBy: 'admin',
          });
          redirect(c, `/admin/invites?${new URLSearchParams({ created: created!.codes[0]! }).toString()}`);
        });
      },
    },
  ];
}
