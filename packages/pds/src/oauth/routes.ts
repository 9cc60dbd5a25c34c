/**
 * The OAuth plain routes: metadata, JWKS, PAR, token, revocation (JSON, with the spec's error
 * bodies and a fresh DPoP-Nonce on every answer), the authorization page and its two forms,
 * and the authorized-apps page. A browser that signed in gets a session kept in memory (a
 * random id in an HttpOnly cookie, never the password); every form carries a token derived
 * from the request or session it belongs to, so another site cannot post them.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Account } from '../account/account-manager.ts';
import type { AppContext } from '../context.ts';
import { clientIp } from '../rate-limit/rate-limiter.ts';
import type { HttpMethod, PlainRoute, PlainRouteContext } from '../routes.ts';
import { XrpcError } from '../xrpc/errors.ts';
import { OAuthError } from './errors.ts';
import { appsPage, appsSignInPage, consentPage, hostOf, messagePage, signInPage, STYLE } from './pages.ts';
import { OAuthProvider, type Params } from './provider.ts';
import { OAuthPermissions } from './scope.ts';

const COOKIE = 'portage_oauth';
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_BODY_BYTES = 64 * 1024;

interface BrowserSession {
  did: string;
  expiresAt: number;
}

const sessions = new WeakMap<AppContext, Map<string, BrowserSession>>();
function sessionsOf(ctx: AppContext): Map<string, BrowserSession> {
  let map = sessions.get(ctx);
  if (!map) sessions.set(ctx, (map = new Map()));
  return map;
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === COOKIE) return rest.join('=');
  }
  return undefined;
}

function currentSession(c: PlainRouteContext): { id: string; session: BrowserSession } | undefined {
  const id = cookieOf(c.req);
  if (!id) return undefined;
  const map = sessionsOf(c.ctx);
  const session = map.get(id);
  if (!session) return undefined;
  if (session.expiresAt <= Date.now()) {
    map.delete(id);
    return undefined;
  }
  return { id, session };
}

function startSession(c: PlainRouteContext, did: string): string {
  const map = sessionsOf(c.ctx);
  for (const [id, s] of map) if (s.expiresAt <= Date.now()) map.delete(id);
  const id = randomBytes(32).toString('base64url');
  map.set(id, { did, expiresAt: Date.now() + SESSION_TTL_MS });
  const secure = c.ctx.config.publicUrl.startsWith('https:');
  c.res.setHeader(
    'Set-Cookie',
    [
      `${COOKIE}=${id}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Lax',
      `Max-Age=${SESSION_TTL_MS / 1000}`,
      ...(secure ? ['Secure'] : []),
    ].join('; '),
  );
  return id;
}

function formToken(ctx: AppContext, purpose: string): string {
  return createHmac('sha256', ctx.oauth.formSecret).update(purpose).digest('base64url');
}

function tokenMatches(ctx: AppContext, purpose: string, given: string | null): boolean {
  const a = Buffer.from(formToken(ctx, purpose));
  const b = Buffer.from(given ?? '');
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<{ text: string; type: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new OAuthError('invalid_request', 'request body too large');
    chunks.push(chunk);
  }
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  return { text: Buffer.concat(chunks).toString('utf8'), type };
}

async function readParams(req: IncomingMessage): Promise<Params> {
  const { text, type } = await readBody(req);
  if (type === 'application/json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OAuthError('invalid_request', 'body is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object') throw new OAuthError('invalid_request', 'body must be an object');
    const out: Params = {};
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
    return out;
  }
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  throw new OAuthError('invalid_request', 'body must be application/x-www-form-urlencoded or application/json');
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const { text } = await readBody(req);
  return new URLSearchParams(text);
}

function sendJson(c: PlainRouteContext, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  c.res.writeHead(status, {
    'Cache-Control': 'no-store',
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': bytes.byteLength,
  });
  c.res.end(c.req.method === 'HEAD' ? undefined : bytes);
}

const pageHeaders = (formAction: string[] = []) => ({
  'Content-Security-Policy': `default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'${formAction
    .map((o) => ` ${o}`)
    .join('')}; frame-ancestors 'none'; base-uri 'none'`,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
});

function sendHtml(c: PlainRouteContext, status: number, html: string, formAction: string[] = []): void {
  const body = Buffer.from(html, 'utf8');
  c.res.writeHead(status, {
    ...pageHeaders(formAction),
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.byteLength,
  });
  c.res.end(c.req.method === 'HEAD' ? undefined : body);
}

function redirect(c: PlainRouteContext, location: string): void {
  c.res.writeHead(303, { ...pageHeaders(), Location: location, 'Content-Length': 0 });
  c.res.end();
}

/** A JSON endpoint: OAuthErrors become `{error, error_description}`; every answer carries a nonce. */
function oauthEndpoint(
  path: string,
  run: (c: PlainRouteContext, provider: OAuthProvider) => Promise<[number, unknown]>,
): PlainRoute {
  return {
    path,
    methods: ['POST'],
    async handler(c) {
      const provider = c.ctx.oauth.provider;
      const nonce = { 'DPoP-Nonce': provider.dpop.nextNonce() };
      try {
        const [status, body] = await run(c, provider);
        sendJson(c, status, body, nonce);
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        sendJson(c, err.status, err.toJSON(), { ...nonce, ...err.headers });
      }
    },
  };
}

function dpopOf(c: PlainRouteContext, path: string) {
  return { header: c.req.headers.dpop, method: c.req.method ?? 'POST', url: `${c.ctx.config.publicUrl}${path}` };
}

function appOf(clientId: string, name: string | undefined) {
  return { name: name ?? hostOf(clientId), host: hostOf(clientId) };
}

function accountLabel(account: Account): string {
  return account.handle ? `@${account.handle}` : account.did;
}

/** Renders the authorization page for a request: sign in, or agree. */
async function showAuthorize(
  c: PlainRouteContext,
  requestUri: string | null,
  clientId: string | null,
  error?: string,
  askCode?: boolean,
  handle?: string,
) {
  const { provider } = c.ctx.oauth;
  let opened;
  try {
    opened = await provider.openRequest(requestUri, clientId);
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    sendHtml(
      c,
      400,
      messagePage('This sign-in link does not work', `${err.message}. Go back to the app and start signing in again.`),
    );
    return;
  }
  const { request, client } = opened;
  provider.extendForPage(request);
  const app = appOf(client.id, client.metadata.client_name);
  const redirectOrigin = new URL(request.parameters.redirect_uri).origin;
  const current = currentSession(c);
  const account = current ? c.ctx.accountManager.getAccount(current.session.did) : undefined;
  const uri = OAuthProvider.requestUriOf(request);
  if (!account || account.takedownRef) {
    sendHtml(
      c,
      error ? 401 : 200,
      signInPage({
        app,
        server: c.ctx.config.hostname,
        fields: { request_uri: uri, csrf: formToken(c.ctx, `request:${request.id}:`) },
        handle: handle ?? request.parameters.login_hint,
        error,
        askCode,
      }),
      [redirectOrigin],
    );
    return;
  }
  provider.bindAccount(request, account);
  sendHtml(
    c,
    200,
    consentPage({
      app,
      account: accountLabel(account),
      grants: new OAuthPermissions(request.parameters.scope).describe(),
      redirectHost: hostOf(request.parameters.redirect_uri),
      fields: { request_uri: uri, csrf: formToken(c.ctx, `request:${request.id}:${current!.id}`) },
    }),
    [redirectOrigin],
  );
}

/** Checks a handle and password; answers the failure in words for the page. */
async function signIn(c: PlainRouteContext, handle: string, password: string, code: string | undefined) {
  if (!handle || !password) return { error: 'Enter your handle and password.' };
  if (password.length > 1024) return { error: 'That password is too long. Reset it, then try again.' };
  // Password guesses here count against the same limit as createSession's.
  const limiter = c.ctx.rateLimiter;
  if (limiter) {
    const ip = clientIp(c.req);
    try {
      limiter.check(ip, c.res, [{ policy: 'createSession', key: `${handle.toLowerCase()}-${ip}`, points: 1 }]);
    } catch (err) {
      if (err instanceof XrpcError && err.status === 429) {
        return { error: 'Too many sign-in attempts. Wait a few minutes, then try again.' };
      }
      throw err;
    }
  }
  let login;
  try {
    login = await c.ctx.accountManager.login(handle.replace(/^@/, ''), password);
  } catch (err) {
    if (err instanceof XrpcError) return { error: 'That handle and password do not match. Check both and try again.' };
    throw err;
  }
  if (login.appPassword) return { error: 'Use your account password here, not an app password.' };
  if (login.account.takedownRef) return { error: 'This account has been taken down and cannot sign in to apps.' };
  try {
    await c.ctx.emailFlows.checkSignInCode(login.account, code || undefined);
  } catch (err) {
    if (err instanceof XrpcError && err.error === 'AuthFactorTokenRequired') {
      return { error: 'We emailed you a confirmation code. Enter it below.', askCode: true };
    }
    if (err instanceof XrpcError)
      return { error: 'That confirmation code is wrong or expired. Check your email and try again.', askCode: true };
    throw err;
  }
  return { account: login.account };
}

export function oauthRoutes(): PlainRoute[] {
  const get = (path: string, handler: PlainRoute['handler']): PlainRoute => ({ path, handler });
  const post = (path: string, handler: PlainRoute['handler'], methods: HttpMethod[] = ['POST']): PlainRoute => ({
    path,
    methods,
    handler,
  });
  return [
    get('/.well-known/oauth-protected-resource', async (c) =>
      sendJson(c, 200, c.ctx.oauth.provider.protectedResourceMetadata(), { 'Cache-Control': 'max-age=300' }),
    ),
    get('/.well-known/oauth-authorization-server', async (c) =>
      sendJson(c, 200, c.ctx.oauth.provider.authorizationServerMetadata(), { 'Cache-Control': 'max-age=300' }),
    ),
    get('/oauth/jwks', async (c) => sendJson(c, 200, c.ctx.oauth.provider.jwks(), { 'Cache-Control': 'max-age=300' })),
    get('/oauth/style.css', async (c) => {
      const body = Buffer.from(STYLE, 'utf8');
      c.res.writeHead(200, {
        'Content-Type': 'text/css; charset=utf-8',
        'Content-Length': body.byteLength,
        'Cache-Control': 'max-age=3600',
      });
      c.res.end(c.req.method === 'HEAD' ? undefined : body);
    }),
    oauthEndpoint('/oauth/par', async (c, provider) => [
      201,
      await provider.par(await readParams(c.req), dpopOf(c, '/oauth/par')),
    ]),
    oauthEndpoint('/oauth/token', async (c, provider) => [
      200,
      await provider.token(await readParams(c.req), dpopOf(c, '/oauth/token')),
    ]),
    oauthEndpoint('/oauth/revoke', async (c, provider) => {
      await provider.revoke(await readParams(c.req));
      return [200, {}];
    }),
    get('/oauth/authorize', async (c) => showAuthorize(c, c.search.get('request_uri'), c.search.get('client_id'))),
    post('/oauth/authorize/sign-in', async (c) => {
      const form = await readForm(c.req);
      const requestUri = form.get('request_uri');
      const { provider } = c.ctx.oauth;
      let opened;
      try {
        opened = await provider.openRequest(requestUri, null);
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        return sendHtml(
          c,
          400,
          messagePage('This sign-in link does not work', `${err.message}. Go back to the app and start again.`),
        );
      }
      if (!tokenMatches(c.ctx, `request:${opened.request.id}:`, form.get('csrf'))) {
        return sendHtml(
          c,
          403,
          messagePage('Sign-in refused', 'This form did not come from this page. Go back to the app and start again.'),
        );
      }
      const handle = (form.get('handle') ?? '').trim();
      const result = await signIn(c, handle, form.get('password') ?? '', form.get('code') ?? undefined);
      if (!result.account) return showAuthorize(c, requestUri, null, result.error, result.askCode, handle);
      startSession(c, result.account.did);
      redirect(
        c,
        `/oauth/authorize?${new URLSearchParams({ request_uri: requestUri!, client_id: opened.request.clientId })}`,
      );
    }),
    post('/oauth/authorize/consent', async (c) => {
      const form = await readForm(c.req);
      const { provider } = c.ctx.oauth;
      let opened;
      try {
        opened = await provider.openRequest(form.get('request_uri'), null);
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        return sendHtml(
          c,
          400,
          messagePage('This sign-in link does not work', `${err.message}. Go back to the app and start again.`),
        );
      }
      const { request, client } = opened;
      const current = currentSession(c);
      const csrf = form.get('csrf');
      const signedInToken = current && tokenMatches(c.ctx, `request:${request.id}:${current.id}`, csrf);
      const decision = form.get('decision');
      if (decision === 'deny' && (signedInToken || tokenMatches(c.ctx, `request:${request.id}:`, csrf))) {
        return redirect(c, provider.deny(request));
      }
      if (decision !== 'allow' || !current || !signedInToken) {
        return sendHtml(
          c,
          403,
          messagePage(
            'Authorization refused',
            'This form did not come from this page. Go back to the app and start again.',
          ),
        );
      }
      try {
        redirect(c, provider.approve(request, client, current.session.did));
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        sendHtml(
          c,
          400,
          messagePage('This sign-in link does not work', `${err.message}. Go back to the app and start again.`),
        );
      }
    }),
    get('/account/apps', async (c) => {
      const current = currentSession(c);
      const account = current ? c.ctx.accountManager.getAccount(current.session.did) : undefined;
      if (!current || !account) {
        return sendHtml(
          c,
          200,
          appsSignInPage({ server: c.ctx.config.hostname, csrf: formToken(c.ctx, 'apps-sign-in') }),
        );
      }
      const apps = c.ctx.oauth.provider
        .listClients(account.did)
        .map((a) => ({ ...a, grants: new OAuthPermissions(a.scope).describe() }));
      sendHtml(
        c,
        200,
        appsPage({
          account: accountLabel(account),
          apps,
          csrf: formToken(c.ctx, `apps:${current.id}`),
          notice: c.search.get('revoked') ? 'Access taken back. The app has been signed out.' : undefined,
        }),
      );
    }),
    post('/account/apps/sign-in', async (c) => {
      const form = await readForm(c.req);
      if (!tokenMatches(c.ctx, 'apps-sign-in', form.get('csrf'))) {
        return sendHtml(
          c,
          403,
          messagePage('Sign-in refused', 'This form did not come from this page. Open /account/apps and try again.'),
        );
      }
      const result = await signIn(
        c,
        (form.get('handle') ?? '').trim(),
        form.get('password') ?? '',
        form.get('code') ?? undefined,
      );
      if (!result.account) {
        return sendHtml(
          c,
          401,
          appsSignInPage({
            server: c.ctx.config.hostname,
            csrf: formToken(c.ctx, 'apps-sign-in'),
            error: result.error,
          }),
        );
      }
      startSession(c, result.account.did);
      redirect(c, '/account/apps');
    }),
    post('/account/apps/revoke', async (c) => {
      const form = await readForm(c.req);
      const current = currentSession(c);
      if (!current || !tokenMatches(c.ctx, `apps:${current.id}`, form.get('csrf'))) {
        return sendHtml(c, 403, messagePage('Not signed in', 'Open /account/apps, sign in, and try again.'));
      }
      c.ctx.oauth.provider.revokeClient(current.session.did, form.get('client_id') ?? '');
      redirect(c, '/account/apps?revoked=1');
    }),
    post('/account/apps/sign-out', async (c) => {
      const form = await readForm(c.req);
      const current = currentSession(c);
      if (current && tokenMatches(c.ctx, `apps:${current.id}`, form.get('csrf'))) {
        sessionsOf(c.ctx).delete(current.id);
        c.res.setHeader('Set-Cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
      }
      redirect(c, '/account/apps');
    }),
  ];
}
