/**
 * Starting the reference servers (@atproto/dev-env, test peers only) the way every interop test
 * needs them: on an explicit free loopback port, with the files they write kept in a folder the
 * test removes. Shared by the PDS, migration and CLI tests.
 */
import { createServer } from 'node:net';
// Types only: the reference is loaded when a server starts, so processes that only want freePort
// (benchmark clients and Portage's own benchmark servers) do not carry it in their heap.
import type { TestPds, TestPlc } from '@atproto/dev-env';

/** A port nothing listens on right now (bind 127.0.0.1:0, read the port, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs `start` with TMPDIR pointed at `dir`, then puts TMPDIR back: the reference servers place
 * their databases and blobs under os.tmpdir() when created and never remove them.
 */
export async function withTmpdir<T>(dir: string, start: () => Promise<T>): Promise<T> {
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await start();
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  }
}

/** A reference PLC directory on a free loopback port, its files under `dir`. */
export function startReferencePlc(dir: string): Promise<TestPlc> {
  return withTmpdir(dir, async () => {
    const { TestPlc } = await import('@atproto/dev-env');
    return TestPlc.create({ port: await freePort() });
  });
}

/**
 * A reference PDS on a free loopback port using the PLC directory at `didPlcUrl`, its files under
 * `dir`. `opts` are passed to TestPds.create as they are (serviceDid, inviteRequired, limits...).
 */
export function startReferencePds(
  dir: string,
  didPlcUrl: string,
  opts: Record<string, unknown> = {},
): Promise<TestPds> {
  // The reference resolves DIDs through a fetch that refuses IP-address hostnames.
  const plcUrl = didPlcUrl.replace('//127.0.0.1:', '//localhost:');
  return withTmpdir(dir, async () => {
    const { TestPds } = await import('@atproto/dev-env');
    return TestPds.create({ didPlcUrl: plcUrl, port: await freePort(), ...opts } as never);
  });
}
