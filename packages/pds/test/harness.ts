/**
 * Test harness: a whole PDS on 127.0.0.1 with a random port and a fresh temporary data
 * directory, removed again by close(). Each test file starts its own.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { ServerBackups } from '../src/backup/server-backups.ts';
import { type Env, loadConfig } from '../src/config.ts';
import type { AppContext } from '../src/context.ts';
import { startPds } from '../src/index.ts';
import type { Logger } from '../src/logger.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import type { RateLimitPolicies } from '../src/rate-limit/rate-limiter.ts';

export interface TestPds {
  /** Base URL to send requests to (http://127.0.0.1:<port>). */
  url: string;
  /** The configured public URL (http://localhost:<port>), as DID documents name it. */
  publicUrl: string;
  ctx: AppContext;
  /** The scheduled server backups, when PORTAGE_BACKUP_DIRECTORY is set. */
  backups: ServerBackups | undefined;
  dataDir: string;
  /** The PLC directory this PDS uses (its own in-process one unless `plcUrl` was given). */
  plcUrl: string;
  close(): Promise<void>;
}

export interface TestPdsOptions {
  /** Extra PDS_* settings; they override the harness defaults. */
  env?: Env;
  /** Use this PLC directory instead of starting one (e.g. to share it between two PDSes). */
  plcUrl?: string;
  /** DNS TXT answers for handle resolution, by name (default: none). */
  txtRecords?: Record<string, string[]>;
  /** Answers for non-loopback URLs (e.g. a custom handle's well-known file); others fail. */
  externalFetch?: (url: URL) => Response | undefined;
  /** Rate-limit policies instead of the reference's (they apply with PDS_RATE_LIMITS_ENABLED). */
  rateLimits?: Partial<RateLimitPolicies>;
  /**
   * Serve this existing data directory (its PLC directory in `<dataDir>/plc`) instead of a fresh
   * temporary one; close() stops the servers and leaves it in place.
   */
  dataDir?: string;
  /** Log through this logger instead of the silent default (to read what a run logged). */
  logger?: Logger;
}

/**
 * fetch for a test PDS: loopback goes through, anything else is answered by `external` or
 * refused, so a test can never send traffic off this machine.
 */
export function loopbackOnlyFetch(external?: (url: URL) => Response | undefined): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]') {
      return fetch(input, init);
    }
    const answer = external?.(url);
    if (answer) return answer;
    throw new TypeError(`test fetch refused a non-loopback URL: ${url.origin}`);
  };
}

export async function startTestPds(opts: TestPdsOptions = {}): Promise<TestPds> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'portage-pds-test-'));
  const removeDataDir = () => {
    if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  let plc: RunningPlcDirectory | undefined;
  try {
    if (!opts.plcUrl)
      plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dataDir, 'plc') });
    const plcUrl = opts.plcUrl ?? plc!.url;
    const config = loadConfig({
      PDS_HOSTNAME: 'localhost',
      PDS_PORT: '0',
      PDS_DATA_DIRECTORY: dataDir,
      PDS_SERVICE_DID: 'did:web:localhost',
      PDS_SERVICE_HANDLE_DOMAINS: '.test',
      PDS_INVITE_REQUIRED: 'false',
      PDS_DEV_MODE: 'true',
      PDS_DID_PLC_URL: plcUrl,
      LOG_LEVEL: 'silent',
      ...opts.env,
    });
    const txt = opts.txtRecords ?? {};
    const pds = await startPds(config, {
      host: '127.0.0.1',
      resolveTxt: async (name) => txt[name] ?? [],
      fetch: loopbackOnlyFetch(opts.externalFetch),
      rateLimits: opts.rateLimits,
      logger: opts.logger,
    });
    return {
      url: pds.localUrl,
      publicUrl: pds.url,
      ctx: pds.ctx,
      backups: pds.backups,
      dataDir,
      plcUrl,
      async close() {
        await pds.close();
        await plc?.close();
        removeDataDir();
      },
    };
  } catch (err) {
    await plc?.close();
    removeDataDir();
    throw err;
  }
}

/**
 * The newest emailed token (XXXXX-XXXXX) a PDS sent to `email`: without SMTP its mailer appends
 * every mail to the outbox file at `outboxPath` (`ctx.mailer.outboxPath`).
 */
export function outboxToken(outboxPath: string, email: string | null | undefined): string | undefined {
  let text: string;
  try {
    text = readFileSync(outboxPath, 'utf8');
  } catch {
    return undefined;
  }
  const mails = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { to: string; text: string })
    .filter((m) => m.to === email);
  return /[A-Z2-7]{5}-[A-Z2-7]{5}/.exec(mails.at(-1)?.text ?? '')?.[0];
}

export interface FirehoseFrame {
  t: string;
  body: Record<string, unknown>;
}

/** The firehose of the PDS at `url` from `cursor` until a frame matches `until` (or `waitMs` pass). */
export async function readFirehose(
  url: string,
  cursor: number,
  until: (frame: FirehoseFrame) => boolean,
  waitMs = 10_000,
): Promise<FirehoseFrame[]> {
  const frames: FirehoseFrame[] = [];
  const socket = new WebSocket(`${url.replace('http', 'ws')}/xrpc/com.atproto.sync.subscribeRepos?cursor=${cursor}`);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, waitMs);
      socket.on('message', (data: Buffer) => {
        const frame = decodeFrame(new Uint8Array(data));
        const decoded = { t: String(frame.t), body: frame.body as Record<string, unknown> };
        frames.push(decoded);
        if (until(decoded)) {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.once('error', reject);
    });
  } finally {
    socket.terminate();
  }
  return frames;
}
