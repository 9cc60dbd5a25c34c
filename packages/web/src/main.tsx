import { render } from 'preact';
import { App } from './app.tsx';
import { readPageConfig } from './config.ts';
import { openBrowserStorage } from './storage/choose.ts';
import './styles.css';

const root = document.getElementById('app')!;
Promise.all([openBrowserStorage(), readPageConfig()]).then(
  ([storage, config]) => render(<App config={config} storage={storage} />, root),
  () => {
    root.textContent = 'This browser keeps no storage for this page. Allow site data for it, then reload the page.';
  },
);
