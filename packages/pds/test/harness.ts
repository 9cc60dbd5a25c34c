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
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';

export interface TestPds {
  /** Base URL to send requests to (http://127.0.0.1:<port>). */
  url: string;
  /** The configured public URL (http://localhost:<port>), as DID documents name it. */
  publicUrl: string;
  ctx: AppContext;
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
}

export async function startTestPds(opts: TestPdsOptions = {}): Promise<TestPds> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portage-pds-test-'));
  let plc: RunningPlcDirectory | undefined;
  try {
    if (!opts.plcUrl) plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dataDir, 'plc') });
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
    const pds = await startPds(config, { host: '127.0.0.1' });
    return {
      url: pds.localUrl,
      publicUrl: pds.url,
      ctx: pds.ctx,
      dataDir,
      plcUrl,
      async close() {
        await pds.close();
        await plc?.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await plc?.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
