/**
 * Entry point of a benchmark server process (see migration-servers.ts):
 *   node migration-server-main.ts --server <json>           a reference PDS
 *   node migration-server-main.ts --portage-server <json>   a Portage PDS
 */
import { servePortagePds, serveReferencePds } from './migration-servers.ts';

const [kind, json] = process.argv.slice(2);
if (kind === '--server') await serveReferencePds(JSON.parse(json!) as { plcUrl: string; serviceDid: string });
else if (kind === '--portage-server') {
  await servePortagePds(JSON.parse(json!) as { plcUrl: string; serviceDid: string; dataDir: string });
} else throw new Error(`usage: migration-server-main.ts --server|--portage-server <json>`);
