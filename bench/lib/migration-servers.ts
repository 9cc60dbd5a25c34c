/**
 * The servers the migration benchmarks move accounts between, each in a process of its own: a
 * reference PDS or a Portage PDS on a shared PLC, each beside a loopback endpoint that hands out
 * the PLC token its mailer would have emailed (`/token?did=`). Also fills an account on a server
 * with the benchmark's records and blobs.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  announceReady,
  benchNodeArgs,
  closeOnSigterm,
  startBenchPortage,
  startBenchReference,
  startChildServer,
} from './child-server.ts';

export interface ServerHandle {
  url: string;
  tokenUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a server process: the reference PDS, or Portage's when `portageDataDir` is given.
 * BENCH_SERVER_PROF=<dir> writes a CPU profile of each there.
 */
export async function startServerProcess(
  plcUrl: string,
  serviceDid: string,
  env: NodeJS.ProcessEnv,
  portageDataDir?: string,
): Promise<ServerHandle> {
  const args = portageDataDir
    ? ['--portage-server', JSON.stringify({ plcUrl, serviceDid, dataDir: portageDataDir })]
    : ['--server', JSON.stringify({ plcUrl, serviceDid })];
  const child = await startChildServer(join(import.meta.dirname, 'migration-server-main.ts'), args, {
    env,
    nodeArgs: benchNodeArgs(portageDataDir ? 'portage' : 'reference', 'BENCH_SERVER_PROF'),
    quiet: true,
    label: 'server process',
  });
  return { ...(JSON.parse(child.ready) as { url: string; tokenUrl: string }), pid: child.pid, stop: child.stop };
}

/** The PLC token the server last emailed `did`, from its token endpoint. */
export async function fetchToken(tokenUrl: string, did: string): Promise<string> {
  const res = await fetch(`${tokenUrl}?did=${encodeURIComponent(did)}`);
  return (await res.text()).trim();
}

/** In a child: one reference PDS with room for the benchmark's imports and blobs. */
export async function serveReferencePds(opts: { plcUrl: string; serviceDid: string }): Promise<void> {
  const pds = await startBenchReference({
    ...opts,
    maxImportSize: 1024 * 1024 * 1024,
    blobUploadLimit: 64 * 1024 * 1024,
  });
  const { plcToken } = await import('../../packages/migrate/test/helpers/network.ts');
  await serveWithTokens(
    pds.url,
    (did) => plcToken(pds, did),
    () => pds.close(),
  );
}

/** In a child: one Portage PDS, its PLC tokens read from the outbox its mailer writes without SMTP. */
export async function servePortagePds(opts: { plcUrl: string; serviceDid: string; dataDir: string }): Promise<void> {
  const pds = await startBenchPortage(opts);
  const { outboxToken } = await import('../../packages/pds/test/harness.ts');
  await serveWithTokens(
    pds.localUrl,
    (did) => outboxToken(pds.ctx.mailer.outboxPath, pds.ctx.accountManager.getAccount(did)?.email),
    () => pds.close(),
  );
}

/**
 * Beside a PDS serving at `url`: a loopback endpoint answering `/token?did=` with the PLC token
 * the PDS last emailed that account. Prints READY <json> and closes both on SIGTERM.
 */
async function serveWithTokens(
  url: string,
  tokenFor: (did: string) => Promise<string | undefined> | string | undefined,
  close: () => Promise<unknown>,
): Promise<void> {
  const tokens = createServer(async (req, res) => {
    const token = await tokenFor(new URL(req.url!, 'http://x').searchParams.get('did')!);
    res.statusCode = token ? 200 : 404;
    res.end(token ?? '');
  });
  await new Promise<void>((r) => tokens.listen(0, '127.0.0.1', r));
  const tokenUrl = `http://127.0.0.1:${(tokens.address() as { port: number }).port}/token`;
  announceReady(JSON.stringify({ url, tokenUrl }));
  closeOnSigterm(() => {
    tokens.close();
    return close();
  });
}

/**
 * Creates `<name>.test` on the server at `url` with `records` posts, `blobs` random blobs of
 * `bytes` each held by a record, and a preference; resolves to its DID.
 */
export async function fillAccount(
  url: string,
  name: string,
  password: string,
  opts: { records: number; blobs: number; bytes: number },
): Promise<string> {
  const { AtpAgent } = await import('@atproto/api');
  const agent = new AtpAgent({ service: url });
  await agent.createAccount({ handle: `${name}.test`, email: `${name}@example.com`, password });
  const did = agent.session!.did;
  process.stderr.write(
    `bench: creating ${opts.records} records and ${opts.blobs} blobs of ${opts.bytes / 1024} KB...\n`,
  );
  for (let i = 0; i < opts.records; i += 200) {
    const writes = [];
    for (let j = i; j < Math.min(opts.records, i + 200); j++) {
      writes.push({
        $type: 'com.atproto.repo.applyWrites#create' as const,
        collection: 'app.bsky.feed.post',
        value: {
          $type: 'app.bsky.feed.post',
          text: `post number ${j}: ${'lorem ipsum '.repeat(6)}`,
          createdAt: new Date().toISOString(),
        },
      });
    }
    await agent.com.atproto.repo.applyWrites({ repo: did, writes, validate: false });
  }
  for (let i = 0; i < opts.blobs; i++) {
    const { data } = await agent.com.atproto.repo.uploadBlob(randomBytes(opts.bytes), { encoding: 'image/jpeg' });
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
    });
  }
  await agent.app.bsky.actor.putPreferences({
    preferences: [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: true }],
  });
  return did;
}
