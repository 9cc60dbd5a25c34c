/**
 * Debian's Chromium as a person runs it, driven through the debugging protocol with nothing
 * enabled but what the bench asks for. Playwright enables the Network domain on every page it
 * drives, which copies each request's body into the browser process: a page that uploads many
 * large bodies then spends its time on the tool, not on its own work. Here the page is found by
 * its visible text (labels, button text, headings), as the tests' Playwright locators find it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CHROMIUM } from '../../test/support/browser.ts';

/** How often a wait looks at the page again. */
const POLL_MS = 25;

export class PlainChromium {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();

  private readonly child: ChildProcess;
  private readonly profile: string;
  private readonly socket: WebSocket;

  private constructor(child: ChildProcess, profile: string, socket: WebSocket) {
    this.child = child;
    this.profile = profile;
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id!);
      if (message.error) waiting.reject(new Error(message.error.message));
      else waiting.resolve(message.result);
    });
  }

  /** A headless Chromium with a fresh profile, one blank tab of the given size, connected to it. */
  static async launch(width: number, height: number): Promise<PlainChromium> {
    const profile = mkdtempSync(join(tmpdir(), 'portage-chromium-'));
    const child = spawn(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        'about:blank',
      ],
      // Its own process group, so that closing ends its helper processes too.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    try {
      const browserUrl = await new Promise<string>((resolve, reject) => {
        const lines = createInterface({ input: child.stderr! });
        lines.on('line', (line) => {
          const url = /DevTools listening on (ws:\/\/\S+)/.exec(line)?.[1];
          if (url) resolve(url);
        });
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`Chromium ended with ${code} before it could be driven`)));
      });
      child.stderr!.resume();
      const { host } = new URL(browserUrl);
      const targets = (await (await fetch(`http://${host}/json/list`)).json()) as {
        type: string;
        webSocketDebuggerUrl: string;
      }[];
      const tab = targets.find((target) => target.type === 'page');
      if (!tab) throw new Error('Chromium opened no tab');
      const socket = new WebSocket(tab.webSocketDebuggerUrl);
      await new Promise((resolve, reject) => {
        socket.addEventListener('open', resolve, { once: true });
        socket.addEventListener('error', () => reject(new Error('could not connect to the tab')), { once: true });
      });
      return new PlainChromium(child, profile, socket);
    } catch (error) {
      process.kill(-child.pid!, 'SIGTERM');
      rmSync(profile, { recursive: true, force: true });
      throw error;
    }
  }

  /** One debugging-protocol command on the tab. */
  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) =>
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }),
    );
  }

  async goto(url: string): Promise<void> {
    await this.send('Page.navigate', { url });
  }

  /** The value of a JavaScript expression evaluated in the page (awaited if it is a promise). */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{
      result: { value?: T };
      exceptionDetails?: { exception?: { description?: string }; text: string };
    }>('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (exceptionDetails) throw new Error(exceptionDetails.exception?.description ?? exceptionDetails.text);
    return result.value as T;
  }

  /** Types `value` into the enabled input whose label reads `label`, once there is one. */
  fill(label: string, value: string, timeoutMs: number): Promise<void> {
    return this.until(
      `(() => {
        const label = [...document.querySelectorAll('label')].find((l) => l.textContent.trim() === ${JSON.stringify(label)});
        const input = label?.control;
        if (!input || input.disabled) return false;
        Object.getOwnPropertyDescriptor(Object.getPrototypeOf(input), 'value').set.call(input, ${JSON.stringify(value)});
        input.dispatchEvent(new Event('input', { bubbles: true }));
        input.dispatchEvent(new Event('change', { bubbles: true }));
        return true;
      })()`,
      `a field labelled ${label}`,
      timeoutMs,
    );
  }

  /** Clicks the enabled button that reads `text`, once there is one. */
  click(text: string, timeoutMs: number): Promise<void> {
    return this.until(
      `(() => {
        const button = [...document.querySelectorAll('button')].find((b) => b.textContent.trim() === ${JSON.stringify(text)});
        if (!button || button.disabled) return false;
        button.click();
        return true;
      })()`,
      `a button ${text}`,
      timeoutMs,
    );
  }

  /** Waits for a top-level heading containing `text`. */
  heading(text: string, timeoutMs: number): Promise<void> {
    return this.until(
      `[...document.querySelectorAll('h1')].some((h) => h.textContent.toLowerCase().includes(${JSON.stringify(text.toLowerCase())}))`,
      `a heading ${text}`,
      timeoutMs,
    );
  }

  /** Evaluates `expression` until it is true. */
  private async until(expression: string, what: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    // A navigation under way destroys the context an evaluation runs in: look again.
    while (!(await this.evaluate<boolean>(expression).catch(() => false))) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async close(): Promise<void> {
    this.socket.close();
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      process.kill(-this.child.pid!, 'SIGTERM');
      await exited;
    }
    // Helper processes of the group may still be writing to the profile for a moment after it exits.
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  }
}
