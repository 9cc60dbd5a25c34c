/**
 * `portage plc`: runs the embedded did:plc directory on its own, e.g. to share one directory
 * between several local Portage instances (point each at it with PDS_DID_PLC_URL).
 */
import { join, resolve } from 'node:path';
import { startPlcDirectory } from '@portage/pds/plc/server';

export const description = 'Run the embedded did:plc directory alone (PORTAGE_PLC_PORT, default 2582)';

const DEFAULT_PORT = 2582;

const HELP = `Usage: portage plc

Runs a did:plc directory (the same one \`portage serve\` embeds) until SIGINT/SIGTERM.

Environment:
  PORTAGE_PLC_PORT     port to listen on (default ${DEFAULT_PORT})
  PORTAGE_PLC_HOST     address to bind (default 127.0.0.1)
  PDS_DATA_DIRECTORY   data directory (default ./data); the directory's database is in its plc/ folder
`;

function parsePort(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_PORT;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new Error(`PORTAGE_PLC_PORT must be a port number (0-65535; 0 picks a free one), got "${text}"`);
  }
  return port;
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.length > 0) {
    process.stderr.write(`portage plc: unexpected argument "${args[0]}"\n\n${HELP}`);
    return 2;
  }
  let port: number;
  try {
    port = parsePort(process.env.PORTAGE_PLC_PORT);
  } catch (err) {
    process.stderr.write(`portage plc: ${(err as Error).message}\n`);
    return 2;
  }
  const dataDirectory = join(resolve(process.env.PDS_DATA_DIRECTORY || './data'), 'plc');
  const host = process.env.PORTAGE_PLC_HOST || '127.0.0.1';
  const running = await startPlcDirectory({ port, host, dataDirectory });
  process.stdout.write(`PLC directory listening on ${running.url} (data in ${dataDirectory})\n`);
  process.stdout.write(`Point a PDS at it with PDS_DID_PLC_URL=${running.url}\n`);

  await new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.write(`Received ${signal}; stopping the PLC directory\n`);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await running.close();
  return 0;
}
