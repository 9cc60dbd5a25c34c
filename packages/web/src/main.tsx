import { render } from 'preact';
import { App } from './app.tsx';
import { readPageConfig } from './config.ts';
import { answerSignInWindow } from './oauth.ts';
import { openBrowserStorage } from './storage/choose.ts';
import './styles.css';

const root = document.getElementById('app')!;
if (answerSignInWindow()) {
  // Shown only when the browser keeps the sign-in window open.
  render(
    <main>
      <h1>Signed in</h1>
      <p>Go back to the migration page and continue there. You can close this window.</p>
    </main>,
    root,
  );
} else {
  Promise.all([openBrowserStorage(), readPageConfig()]).then(
    ([storage, config]) => render(<App config={config} storage={storage} />, root),
    () => {
      root.textContent = 'This browser keeps no storage for this page. Allow site data for it, then reload the page.';
    },
  );
}
