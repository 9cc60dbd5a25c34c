/**
 * Starting and stopping a whole PDS: context (services) + HTTP server. Used by
 * `portage serve` and by the test harness.
 */
import { attachSubscribeRepos } from './api/com/atproto/sync/subscribeRepos.ts';
import { ServerBackups } from './backup/server-backups.ts';
import type { PdsConfig } from './config.ts';
import { AppContext, type AppContextOptions } from './context.ts';
import { createRequestHandler, listen, type RequestHandler } from './server.ts';

export { ConfigError, loadConfig, type PdsConfig } from './config.ts';
export { AppContext } from './context.ts';

export interface Pds {
  ctx: AppContext;
  /** The configured public URL (what DID documents name). */
  url: string;
  /** Where this process can reach the server (e.g. http://127.0.0.1:<port>). */
  localUrl: string;
  port: number;
  /** The scheduled server backups (PORTAGE_BACKUP_DIRECTORY), when configured. */
  backups: ServerBackups | undefined;
  close(): Promise<void>;
}

export interface StartPdsOptions extends AppContextOptions {
  /** Interface to bind; default all interfaces (use 127.0.0.1 in tests). */
  host?: string;
}

/**
 * Binds the port first, then builds the services: with PDS_PORT=0 (tests) the public URL
 * of a localhost server must name the port actually chosen, and DID documents created
 * later embed that URL.
 */
export async function startPds(config: PdsConfig, opts: StartPdsOptions = {}): Promise<Pds> {
  // Set once the services exist; until then the bound port answers 503.
  const live: { handler?: RequestHandler } = {};
  const running = await listen(
    (req, res) => {
      if (live.handler) return live.handler(req, res);
      res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' });
      res.end(JSON.stringify({ error: 'NotEnoughResources', message: 'The server is starting' }));
    },
    config.port,
    opts.host,
  );
  if (config.port === 0) {
    config.port = running.port;
    if (config.hostname === 'localhost') config.publicUrl = `http://localhost:${running.port}`;
  }
  let ctx: AppContext;
  try {
    ctx = await AppContext.create(config, opts);
  } catch (err) {
    await running.close();
    throw err;
  }
  live.handler = createRequestHandler(ctx);
  const detachFirehose = attachSubscribeRepos(running.server, ctx.firehose);
  const backups = ServerBackups.forContext(ctx);
  await backups?.start();
  let closing: Promise<void> | undefined;
  return {
    ctx,
    url: config.publicUrl,
    localUrl: running.localUrl,
    port: running.port,
    backups,
    close() {
      closing ??= (async () => {
        detachFirehose();
        const serverClosed = running.close();
        // Firehose sockets would keep the server open: end them while it drains.
        ctx.closeStreams();
        await backups?.stop();
        await serverClosed;
        await ctx.close();
      })();
      return closing;
    },
  };
}
