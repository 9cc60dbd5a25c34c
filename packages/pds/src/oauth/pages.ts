/**
 * The HTML of the OAuth pages: sign in, agree (or not) to what an app asks, and the list of
 * authorized apps. Server-rendered, no script, one column that holds at 360 px, every input
 * labelled, every form usable with the keyboard alone.
 */
import { escapeHtml } from '../admin/page.ts';
import type { AuthorizedClient } from './store.ts';

export const STYLE = `
*{box-sizing:border-box}
body{overflow-wrap:anywhere;margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f6f8}
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border:1px solid #d5dbe1;border-radius:12px;padding:1.25rem}
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .75rem}
p{margin:.5rem 0}
.muted{color:#4a5561;font-size:.95rem}
.app{font-weight:600;overflow-wrap:anywhere}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;font:inherit;padding:.65rem .75rem;border:1px solid #7b8793;border-radius:8px;background:#fff;color:inherit}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid #0b5fcc;outline-offset:2px}
button{font:inherit;font-weight:600;padding:.7rem 1rem;border-radius:8px;border:1px solid #0b5fcc;background:#0b5fcc;color:#fff;cursor:pointer;min-height:44px}
button.secondary{background:#fff;color:#0b4fa8;border-color:#7b8793}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}
.actions button{flex:1 1 8rem}
ul.grants{padding-left:1.25rem;margin:.5rem 0}
ul.grants li{margin:.25rem 0;overflow-wrap:anywhere}
.error{color:#9b1c1c;background:#fdeaea;border:1px solid #e9b3b3;border-radius:8px;padding:.5rem .75rem}
.apps{list-style:none;padding:0;margin:0}
.apps>li{border-top:1px solid #d5dbe1;padding:.75rem 0}
.apps form{margin-top:.5rem}
`.trim();

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/oauth/style.css">
</head>
<body>
<main>
<div class="card">
${body}
</div>
</main>
</body>
</html>`;
}

function hidden(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('\n');
}

export interface AppDescription {
  name: string;
  /** Where the app lives (its client_id's host), shown so a lookalike name cannot hide it. */
  host: string;
}

export function signInPage(opts: {
  app: AppDescription;
  server: string;
  fields: Record<string, string>;
  handle?: string;
  error?: string;
  askCode?: boolean;
}): string {
  const { app } = opts;
  return layout(
    `Sign in · ${app.name}`,
    `<h1>Sign in to continue to <span class="app">${escapeHtml(app.name)}</span></h1>
<p class="muted">${escapeHtml(app.host)} wants to use your account on ${escapeHtml(opts.server)}. Sign in here: the app never sees your password.</p>
${opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : ''}
<form method="post" action="/oauth/authorize/sign-in">
${hidden(opts.fields)}
<label for="handle">Handle</label>
<input type="text" id="handle" name="handle" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${escapeHtml(opts.handle ?? '')}"${opts.handle ? '' : ' autofocus'}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${opts.handle ? ' autofocus' : ''}>
${
  opts.askCode
    ? `<label for="code">Confirmation code</label>
<input type="text" id="code" name="code" autocomplete="one-time-code" autocapitalize="characters" spellcheck="false" required>
<p class="muted">We emailed you a code. Enter it with your password.</p>`
    : ''
}
<div class="actions"><button type="submit">Sign in</button></div>
</form>
<form method="post" action="/oauth/authorize/consent">
${hidden(opts.fields)}
<div class="actions"><button type="submit" name="decision" value="deny" class="secondary">Deny</button></div>
</form>`,
  );
}

export function consentPage(opts: {
  app: AppDescription;
  account: string;
  grants: string[];
  redirectHost: string;
  fields: Record<string, string>;
}): string {
  const { app } = opts;
  return layout(
    `Authorize ${app.name}`,
    `<h1>Allow <span class="app">${escapeHtml(app.name)}</span> to use your account?</h1>
<p class="muted">Signed in as <strong>${escapeHtml(opts.account)}</strong>. The app at ${escapeHtml(app.host)} asks to:</p>
<ul class="grants">
${opts.grants.map((g) => `<li>${escapeHtml(g)}</li>`).join('\n')}
</ul>
<p class="muted">You will be sent back to ${escapeHtml(opts.redirectHost)}. You can take this back at any time on ${'<a href="/account/apps">your authorized apps page</a>'}.</p>
<form method="post" action="/oauth/authorize/consent">
${hidden(opts.fields)}
<div class="actions">
<button type="submit" name="decision" value="allow">Authorize</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</div>
</form>`,
  );
}

export function messagePage(title: string, message: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}

export function appsSignInPage(opts: { server: string; csrf: string; error?: string }): string {
  return layout(
    'Authorized apps',
    `<h1>Your authorized apps</h1>
<p class="muted">Sign in to ${escapeHtml(opts.server)} to see the apps that can use your account, and to take access back.</p>
${opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : ''}
<form method="post" action="/account/apps/sign-in">
${hidden({ csrf: opts.csrf })}
<label for="handle">Handle</label>
<input type="text" id="handle" name="handle" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="actions"><button type="submit">Sign in</button></div>
</form>`,
  );
}

export function appsPage(opts: {
  account: string;
  apps: (AuthorizedClient & { grants: string[] })[];
  csrf: string;
  notice?: string;
}): string {
  const list = opts.apps.length
    ? `<ul class="apps">
${opts.apps
  .map(
    (a) => `<li>
<p class="app">${escapeHtml(a.clientName ?? hostOf(a.clientId))}</p>
<p class="muted">${escapeHtml(a.clientId)} · authorized ${escapeHtml(new Date(a.updatedAt * 1000).toISOString().slice(0, 10))}</p>
<ul class="grants">${a.grants.map((g) => `<li>${escapeHtml(g)}</li>`).join('')}</ul>
<form method="post" action="/account/apps/revoke">
${hidden({ csrf: opts.csrf, client_id: a.clientId })}
<button type="submit" class="secondary" aria-label="Revoke access for ${escapeHtml(a.clientName ?? hostOf(a.clientId))}">Revoke access</button>
</form>
</li>`,
  )
  .join('\n')}
</ul>`
    : '<p>No app can use your account.</p>';
  return layout(
    'Authorized apps',
    `<h1>Your authorized apps</h1>
<p class="muted">Signed in as <strong>${escapeHtml(opts.account)}</strong>.</p>
${opts.notice ? `<p role="status">${escapeHtml(opts.notice)}</p>` : ''}
${list}
<form method="post" action="/account/apps/sign-out">
${hidden({ csrf: opts.csrf })}
<div class="actions"><button type="submit" class="secondary">Sign out</button></div>
</form>`,
  );
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}
