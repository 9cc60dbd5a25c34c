/**
 * `portage plc`: runs the embedded did:plc directory on its own, e.g. to share one directory
 * between several local Portage instances (point each at it with PDS_DID_PLC_URL).
 */
import { join, resolve } from 'node:path';
import {
  DEFAULT_PLC_PORT,
  handleHelpAndStrayArguments,
  parsePortNumber,
  USAGE_EXIT_CODE,
  waitForStopSignal,
} from '../command-line.ts';

export const description = 'Run the embedded did:plc directory alone (PORTAGE_PLC_PORT, default 2582)';

const HELP = `Usage: portage plc

Runs a did:plc directory (the same one \`portage serve\` embeds) until SIGINT/SIGTERM.

Environment:
  PORTAGE_PLC_PORT     port to listen on (default ${DEFAULT_PLC_PORT})
  PORTAGE_PLC_HOST     address to bind (default 127.0.0.1)
  PDS_DATA_DIRECTORY   data directory (default ./data); the directory's database is in its plc/ folder
`;

export async function run(args: string[]): Promise<number> {
  const early = handleHelpAndStrayArguments('plc', HELP, args);
  if (early !== undefined) return early;
  const port = parsePortNumber(process.env.PORTAGE_PLC_PORT, DEFAULT_PLC_PORT);
  if (port === undefined) {
    process.stderr.write(
      `portage plc: PORTAGE_PLC_PORT must be a port number (0-65535; 0 picks a free one), got "${process.env.PORTAGE_PLC_PORT}"\n`,
    );
    return USAGE_EXIT_CODE;
  }
  const dataDirectory = join(resolve(process.env.PDS_DATA_DIRECTORY || './data'), 'plc');
  const host = process.env.PORTAGE_PLC_HOST || '127.0.0.1';
  const { startPlcDirectory } = await import('@portage/pds/plc/server');
  const running = await startPlcDirectory({ port, host, dataDirectory });
  process.stdout.write(`PLC directory listening on ${running.url} (data in ${dataDirectory})\n`);
  process.stdout.write(`Point a PDS at it with PDS_DID_PLC_URL=${running.url}\n`);

  const signal = await waitForStopSignal();
  process.stdout.write(`Received ${signal}; stopping the PLC directory\n`);
  await running.close();
  return 0;
}
