/**
 * A did:web identity for migration tests: a loopback host serving the document its owner has
 * published, and the account such an owner creates on a Portage PDS when first moving in.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { AtpAgent } from '@atproto/api';
import { didKeyToMultikey, generateSigningKey } from '@portage/atproto/crypto';
import type { DidDocument } from '@portage/atproto/identity/did-document';
import { mintServiceJwt } from '../../../pds/src/auth/service-auth.ts';
import type { TestPds } from '../../../pds/test/harness.ts';

export interface DidWebHost {
  /** did:web:localhost%3A<port>: atproto allows a port only for localhost, served over plain http. */
  did: string;
  /** The document the host serves right now: what the owner has published. */
  published: DidDocument | undefined;
  /** The document naming `pdsEndpoint` and `signingKeyDid`, handle webby.test. */
  documentFor(pdsEndpoint: string, signingKeyDid: string): DidDocument;
  close(): Promise<void>;
}

export async function startDidWebHost(): Promise<DidWebHost> {
  const server = createServer((req, res) => {
    if (req.url !== '/.well-known/did.json' || !host.published) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(host.published));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const did = `did:web:localhost%3A${(server.address() as { port: number }).port}`;
  const host: DidWebHost = {
    did,
    published: undefined,
    documentFor: (pdsEndpoint, signingKeyDid) => ({
      '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
      id: did,
      alsoKnownAs: ['at://webby.test'],
      verificationMethod: [
        {
          id: `${did}#atproto`,
          type: 'Multikey',
          controller: did,
          publicKeyMultibase: didKeyToMultikey(signingKeyDid),
        },
      ],
      service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsEndpoint }],
    }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return host;
}

/**
 * Creates webby.test on `pds` (service DID `serviceDid`) as a did:web owner first moving in: with
 * the owner's own key, then with the document naming the server's key published, and activated.
 * Resolves to an agent signed in to it.
 */
export async function createDidWebAccount(
  host: DidWebHost,
  pds: TestPds,
  serviceDid: string,
  password: string,
): Promise<AtpAgent> {
  const ownerKey = await generateSigningKey();
  host.published = host.documentFor(pds.publicUrl, ownerKey.did());
  const jwt = await mintServiceJwt({
    iss: host.did,
    aud: serviceDid,
    lxm: 'com.atproto.server.createAccount',
    key: ownerKey,
  });
  const created = await fetch(`${pds.url}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
    body: JSON.stringify({ did: host.did, handle: 'webby.test', email: 'webby@example.com', password }),
  });
  assert.equal(created.status, 200, await created.clone().text());
  const agent = new AtpAgent({ service: pds.url });
  await agent.login({ identifier: host.did, password });
  // The account starts deactivated until the document names this PDS and its signing key.
  const creds = await agent.com.atproto.identity.getRecommendedDidCredentials();
  host.published = host.documentFor(pds.publicUrl, (creds.data.verificationMethods as { atproto: string }).atproto);
  await agent.com.atproto.server.activateAccount();
  return agent;
}
