/**
 * `portage serve`: the PDS with laptop defaults. Data in ./data, invites not required, email
 * written to an outbox file, and, unless PDS_DID_PLC_URL names one, an embedded did:plc
 * directory on PORTAGE_PLC_PORT (default 2582) that other local instances can share.
 * Runs until SIGINT/SIGTERM, then stops accepting requests, finishes open ones and closes
 * the databases.
 */
import { join } from 'node:path';
import type { PdsConfig } from '@portage/pds';
import type { RunningPlcDirectory } from '@portage/pds/plc/server';
import { DEFAULT_PLC_PORT, handleHelpAndStrayArguments, parsePortNumber, waitForStopSignal } from '../command-line.ts';

export const description = 'Run the PDS (embedded PLC directory and dev defaults unless configured)';

const HELP = `Usage: portage serve

Starts the Personal Data Server. Configuration uses the reference PDS's environment names
(PDS_HOSTNAME, PDS_PORT, PDS_DATA_DIRECTORY, PDS_SERVICE_DID, PDS_DID_PLC_URL, PDS_JWT_SECRET,
PDS_ADMIN_PASSWORD, PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX, PDS_INVITE_REQUIRED, ...);
a pds.env file in the data directory is read too. Secrets left unset are generated once and
kept in <data>/secrets.json (mode 0600).

Defaults for a laptop:
  PDS_DATA_DIRECTORY   ./data
  PDS_PORT             2583 (public URL http://localhost:2583)
  PDS_INVITE_REQUIRED  false
  PDS_DID_PLC_URL      unset: run an embedded PLC directory on PORTAGE_PLC_PORT (default ${DEFAULT_PLC_PORT})
  email                no SMTP: messages go to <data>/outbox.jsonl
`;

export async function run(args: string[]): Promise<number> {
  const early = handleHelpAndStrayArguments('serve', HELP, args);
  if (early !== undefined) return early;
  // Loaded only now, so that `portage --help` and the other commands never pay for the server.
  const { ConfigError, loadConfig, startPds } = await import('@portage/pds');
  const { startPlcDirectory } = await import('@portage/pds/plc/server');

  let config: PdsConfig;
  try {
    config = loadConfig(process.env, { defaults: { PDS_INVITE_REQUIRED: 'false' } });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`portage serve: bad configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let plc: RunningPlcDirectory | undefined;
  if (!config.didPlcUrl) {
    const plcPort = parsePortNumber(process.env.PORTAGE_PLC_PORT, DEFAULT_PLC_PORT);
    if (plcPort === undefined) {
      process.stderr.write('portage serve: bad configuration: PORTAGE_PLC_PORT: expected a port number (0-65535)\n');
      return 2;
    }
    plc = await startPlcDirectory({ port: plcPort, dataDirectory: join(config.dataDirectory, 'plc') });
    config.didPlcUrl = plc.url;
  }

  let pds: Awaited<ReturnType<typeof startPds>>;
  try {
    pds = await startPds(config);
  } catch (err) {
    await plc?.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      process.stderr.write(`portage serve: port ${config.port} is in use; set PDS_PORT to another port\n`);
      return 1;
    }
    throw err;
  }

  const out: string[] = [
    '',
    `Portage PDS running at ${pds.url}`,
    `  service DID      ${config.serviceDid}`,
    `  handle domains   ${config.serviceHandleDomains.join(', ')}`,
    `  data             ${config.dataDirectory}`,
    `  PLC directory    ${config.didPlcUrl}${plc ? ' (embedded)' : ''}`,
    `  invites          ${config.inviteRequired ? 'required' : 'not required'}`,
    `  email            ${config.emailSmtpUrl ? 'SMTP' : `written to ${join(config.dataDirectory, 'outbox.jsonl')}`}`,
    `  move an account  ${pds.url}/migrate/ (in a browser)`,
  ];
  if (config.generatedSecrets.includes('PDS_ADMIN_PASSWORD')) {
    out.push(`  admin password   ${config.adminPassword}   (generated; kept in ${config.secretsPath}, mode 0600)`);
  } else {
    out.push(`  admin password   set by PDS_ADMIN_PASSWORD or kept in ${config.secretsPath}`);
  }
  const domain = config.serviceHandleDomains[0] ?? '.test';
  out.push(
    '',
    'Create an account (any AT Protocol client works too):',
    `  curl -X POST ${pds.url}/xrpc/com.atproto.server.createAccount \\`,
    `    -H 'content-type: application/json' \\`,
    `    -d '{"handle":"alice${domain}","email":"alice@example.com","password":"choose-a-password"}'`,
    '',
  );
  process.stdout.write(`${out.join('\n')}\n`);

  const signal = await waitForStopSignal();
  process.stdout.write(`Received ${signal}; shutting down\n`);
  await pds.close();
  await plc?.close();
  process.stdout.write('Stopped.\n');
  return 0;
}
