/**
 * Who the wizard is to an authorization server, read the way the reference reads it
 * (@atproto/oauth-types and the provider's own client metadata checks): on 127.0.0.1 the atproto
 * loopback client id; served by Portage over https the client metadata document Portage serves
 * at /migrate/oauth-client-metadata.json, which the page learns from its config block.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  isOAuthClientIdDiscoverable,
  oauthClientMetadataSchema,
  parseOAuthLoopbackClientId,
} from '@atproto/oauth-types';
import { MIGRATION_SCOPE } from '@portage/atproto/oauth/migration-scope';
import { webRoutes, wizardClientMetadata } from '../../pds/src/web/static-site.ts';
import { clientIdentity } from '../src/oauth.ts';

const dir = mkdtempSync(join(tmpdir(), 'portage-oauth-client-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The reference provider's check of a client's metadata (not exported: loaded from its file). */
async function referenceValidates(clientId: string, metadata: unknown): Promise<void> {
  const path = join(import.meta.dirname, '../../../node_modules/@atproto/oauth-provider/dist/client/client-manager.js');
  const { ClientManager } = (await import(path)) as {
    ClientManager: { prototype: { validateClientMetadata(id: string, m: unknown): unknown } };
  };
  const manager = Object.assign(Object.create(ClientManager.prototype) as typeof ClientManager.prototype, {
    serverMetadata: { grant_types_supported: ['authorization_code', 'refresh_token'] },
  });
  manager.validateClientMetadata(clientId, oauthClientMetadataSchema.parse(metadata));
}

/** Calls a plain route's handler with a stand-in context; resolves to its status, headers and body. */
async function call(path: string, config: Record<string, unknown>, dist: string) {
  const route = webRoutes(dist).find((r) => r.path === path)!;
  let status = 0;
  let headers: Record<string, string> = {};
  let body = '';
  await route.handler({
    ctx: { config },
    req: { method: 'GET' },
    res: {
      writeHead: (s: number, h: Record<string, string>) => {
        status = s;
        headers = h;
      },
      end: (b?: Buffer) => void (body = String(b)),
    },
    params: undefined,
  } as never);
  return { status, headers, body };
}

describe("the wizard's OAuth client identity", () => {
  it('on 127.0.0.1 is a loopback client id the reference accepts, redirected back to the page', () => {
    const here = { protocol: 'http:', hostname: '127.0.0.1', origin: 'http://127.0.0.1:2583', pathname: '/migrate/' };
    const client = clientIdentity({ target: undefined, plcUrl: '', dohUrl: '' }, here as Location)!;
    const parsed = parseOAuthLoopbackClientId(client.clientId);
    assert.deepEqual(parsed.redirect_uris, ['http://127.0.0.1:2583/migrate/']);
    assert.equal(parsed.scope, MIGRATION_SCOPE);
    assert.equal(client.redirectUri, 'http://127.0.0.1:2583/migrate/');
    const elsewhere = { ...here, protocol: 'https:', hostname: 'tools.example', origin: 'https://tools.example' };
    assert.equal(clientIdentity({ target: undefined, plcUrl: '', dohUrl: '' }, elsewhere as Location), undefined);
  });

  it('served by Portage over https is the metadata document Portage serves, valid to the reference', async () => {
    const dist = join(dir, 'dist');
    mkdirSync(dist, { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><!--portage-config--><div id="app"></div>');
    const config = { publicUrl: 'https://pds.example.com', didPlcUrl: 'https://plc.directory', devMode: false };
    const metadata = wizardClientMetadata(config)!;
    assert.equal(metadata.client_id, 'https://pds.example.com/migrate/oauth-client-metadata.json');
    assert.ok(isOAuthClientIdDiscoverable(metadata.client_id as string));
    assert.deepEqual(metadata.redirect_uris, ['https://pds.example.com/migrate/']);
    await referenceValidates(metadata.client_id as string, metadata);

    const served = await call('/migrate/oauth-client-metadata.json', config, dist);
    assert.equal(served.status, 200);
    assert.deepEqual(JSON.parse(served.body), metadata);
    const page = await call('/migrate/', config, dist);
    assert.match(page.body, /"oauthClientId":"https:\/\/pds\.example\.com\/migrate\/oauth-client-metadata\.json"/);
    const here = {
      protocol: 'https:',
      hostname: 'pds.example.com',
      origin: 'https://pds.example.com',
      pathname: '/migrate/',
    };
    const client = clientIdentity(
      { target: here.origin, plcUrl: '', dohUrl: '', oauthClientId: metadata.client_id as string },
      here as Location,
    )!;
    assert.equal(
      client.redirectUri,
      (metadata.redirect_uris as string[])[0],
      'the page redirects where the document says',
    );

    // Without an https address there is no document: the page uses the loopback client.
    const local = { ...config, publicUrl: 'http://localhost:2583' };
    assert.equal(wizardClientMetadata(local), undefined);
    assert.equal((await call('/migrate/oauth-client-metadata.json', local, dist)).status, 404);
    assert.doesNotMatch((await call('/migrate/', local, dist)).body, /oauthClientId/);
  });
});
