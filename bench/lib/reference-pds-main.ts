/**
 * The reference PDS started as its own service entry point starts it (`readEnv`, `envToCfg`,
 * `envToSecrets`, `PDS.create`, `start`), for the startup benchmark.
 * Usage: node reference-pds-main.ts <port> <data dir>
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [port, dataDir] = process.argv.slice(2);
mkdirSync(dataDir!, { recursive: true });
Object.assign(process.env, {
  PDS_HOSTNAME: 'localhost',
  PDS_PORT: port,
  PDS_DATA_DIRECTORY: dataDir,
  PDS_BLOBSTORE_DISK_LOCATION: join(dataDir!, 'blocks'),
  PDS_JWT_SECRET: 'bench-jwt-secret',
  PDS_ADMIN_PASSWORD: 'bench-admin-password',
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: '1'.repeat(64),
  PDS_DID_PLC_URL: 'http://127.0.0.1:1',
  PDS_DEV_MODE: 'true',
  LOG_ENABLED: 'false',
});
const { PDS, envToCfg, envToSecrets, readEnv } = await import('@atproto/pds');
const env = readEnv();
const pds = await PDS.create(envToCfg(env), envToSecrets(env));
await pds.start();
