/**
 * Test harness: a whole PDS on 127.0.0.1 with a random port and a fresh temporary data
 * directory, removed again by close(). Each test file starts its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Env, loadConfig } from '../src/config.ts';
import type { AppContext } from '../src/context.ts';
import { startPds } from '../src/index.ts';

export interface TestPds {
  /** Base URL to send requests to (http://127.0.0.1:<port>). */
  url: string;
  /** The configured public URL (http://localhost:<port>), as DID documents name it. */
  publicUrl: string;
  ctx: AppContext;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestPdsOptions {
  /** Extra PDS_* settings; they override the harness defaults. */
  env?: Env;
}

export async function startTestPds(opts: TestPdsOptions = {}): Promise<TestPds> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portage-pds-test-'));
  try {
    const config = loadConfig({
      PDS_HOSTNAME: 'localhost',
      PDS_PORT: '0',
      PDS_DATA_DIRECTORY: dataDir,
      PDS_SERVICE_DID: 'did:web:localhost',
      PDS_SERVICE_HANDLE_DOMAINS: '.test',
      PDS_INVITE_REQUIRED: 'false',
      PDS_DEV_MODE: 'true',
      PDS_DID_PLC_URL: 'http://127.0.0.1:9',
      LOG_LEVEL: 'silent',
      ...opts.env,
    });
    const pds = await startPds(config, { host: '127.0.0.1' });
    return {
      url: pds.localUrl,
      publicUrl: pds.url,
      ctx: pds.ctx,
      dataDir,
      async close() {
        await pds.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
