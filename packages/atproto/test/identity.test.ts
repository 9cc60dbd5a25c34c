import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generateSigningKey } from '../src/crypto.ts';
import {
  getAtprotoSigningKey,
  getHandle,
  getPdsEndpoint,
  parseDidDocument,
  sameServiceUrl,
} from '../src/identity/did-document.ts';
import { DidResolver, documentUrl } from '../src/identity/did-resolver.ts';
import { dohResolveTxt, parseTxtData } from '../src/identity/dns-over-https.ts';
import { IdentityError } from '../src/identity/errors.ts';
import { HandleResolver } from '../src/identity/handle-resolver.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
let server: Server;
let base: string;
let requests = 0;
let key = '';

function docFor(did: string, multikey: string) {
  return {
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: did,
    alsoKnownAs: ['at://alice.example.com'],
    verificationMethod: [{ id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: multikey }],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: 'https://pds.example.com' }],
  };
}

before(async () => {
  const signing = await generateSigningKey();
  key = signing.did();
  const multikey = key.slice('did:key:'.length);
  server = createServer((req, res) => {
    requests++;
    if (req.url === `/${DID}`) {
      res.writeHead(200, { 'content-type': 'application/did+ld+json' });
      res.end(JSON.stringify(docFor(DID, multikey)));
    } else if (req.url === '/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(docFor('did:plc:bbbbbbbbbbbbbbbbbbbbbbbb', multikey)));
    } else if (req.url?.startsWith('/dns-query')) {
      res.writeHead(200, { 'content-type': 'application/dns-json' });
      res.end(
        JSON.stringify({
          Status: 0,
          Answer: [{ type: 16, data: '"did=did:plc:' + '"' + ' "ewvi7nxzyoun6zhxrhs64oiz"' }],
        }),
      );
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

describe('DID documents', () => {
  it('finds the PDS, the signing key and the handle, in relative or absolute id form', () => {
    const doc = parseDidDocument(docFor(DID, key.slice(8)), DID);
    assert.equal(getPdsEndpoint(doc), 'https://pds.example.com');
    assert.equal(getAtprotoSigningKey(doc), key);
    assert.equal(getHandle(doc), 'alice.example.com');
    assert.equal(getPdsEndpoint({ id: DID, service: [] }), undefined);
    assert.equal(getHandle({ id: DID }), undefined);
  });
  it('compares service URLs by origin and path, ignoring trailing slashes and default ports', () => {
    assert.equal(sameServiceUrl('https://pds.example.com', 'https://PDS.example.com:443/'), true);
    assert.equal(sameServiceUrl('http://localhost:2583/', 'http://localhost:2583'), true);
    assert.equal(sameServiceUrl('https://pds.example.com', 'http://pds.example.com'), false);
    assert.equal(sameServiceUrl('http://localhost:2583', 'http://localhost:2584'), false);
    assert.equal(sameServiceUrl('https://example.com/pds', 'https://example.com'), false);
    assert.equal(sameServiceUrl(undefined, 'https://example.com'), false);
    assert.equal(sameServiceUrl('not a url', 'not a url'), false);
    // Only http(s) names a service: other schemes have no origin to compare ("null").
    assert.equal(sameServiceUrl('mailto:pds', 'data:pds'), false);
    assert.equal(sameServiceUrl('blob:https://example.com/x', 'https://example.comhttps://example.com/x'), false);
  });

  it('refuses a document about another DID or with malformed fields', () => {
    assert.throws(() => parseDidDocument(docFor('did:plc:other', 'z'), DID), IdentityError);
    assert.throws(() => parseDidDocument({ id: DID, service: 'x' }, DID), /non-array "service"/);
    assert.throws(() => parseDidDocument([], DID), /not a JSON object/);
  });
});

describe('DidResolver', () => {
  it('resolves did:plc from the directory and caches it unless asked not to', async () => {
    const resolver = new DidResolver({ plcUrl: base });
    const before = requests;
    const doc = await resolver.resolve(DID);
    assert.equal(getPdsEndpoint(doc), 'https://pds.example.com');
    await resolver.resolve(DID);
    assert.equal(requests - before, 1);
    await resolver.resolve(DID, { noCache: true });
    assert.equal(requests - before, 2);
  });
  it('takes a cached document only when it is as recent as asked, and forgets one on request', async () => {
    const resolver = new DidResolver({ plcUrl: base });
    const before = requests;
    await resolver.resolve(DID);
    await resolver.resolve(DID, { maxAgeMs: 60_000 });
    assert.equal(requests - before, 1);
    await new Promise((r) => setTimeout(r, 5));
    await resolver.resolve(DID, { maxAgeMs: 1 });
    assert.equal(requests - before, 2, 'a document older than maxAgeMs is read again');
    resolver.forget(DID);
    await resolver.resolve(DID);
    assert.equal(requests - before, 3, 'a forgotten document is read again');
  });
  it('says when a DID does not exist, and refuses a document about someone else', async () => {
    const resolver = new DidResolver({ plcUrl: base });
    await assert.rejects(resolver.resolve('did:plc:cccccccccccccccccccccccc'), (e: unknown) => {
      return e instanceof IdentityError && e.code === 'DidNotFound';
    });
    await assert.rejects(resolver.resolve('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'), /is about did:plc:bbbb/);
  });
  it('maps did:web to its well-known URL (http only for localhost) and rejects other methods', () => {
    assert.equal(documentUrl('did:web:example.com', 'x'), 'https://example.com/.well-known/did.json');
    assert.equal(documentUrl('did:web:localhost%3A2583', 'x'), 'http://localhost:2583/.well-known/did.json');
    assert.throws(() => documentUrl('did:web:example.com:user:alice', 'x'), /hostname only/);
    assert.throws(() => documentUrl('did:key:zabc', 'x'), /unsupported DID/);
    assert.throws(() => documentUrl('did:plc:UPPER', 'x'), /not a valid did:plc/);
  });
  it('reports an unreachable directory as unavailable', async () => {
    const resolver = new DidResolver({ plcUrl: 'http://127.0.0.1:1', timeoutMs: 2000 });
    await assert.rejects(
      resolver.resolve(DID),
      (e: unknown) => e instanceof IdentityError && e.code === 'DidResolutionUnavailable',
    );
  });
});

describe('HandleResolver', () => {
  const noHttp = (async () => new Response('', { status: 404 })) as typeof fetch;
  it('takes the single did= TXT record', async () => {
    const resolver = new HandleResolver({ resolveTxt: async () => [`did=${DID}`, 'other'], fetch: noHttp });
    assert.equal(await resolver.resolve('@Alice.Example.com'), DID);
  });
  it('treats two did= records as no answer and falls back to the well-known file', async () => {
    const seen: string[] = [];
    const resolver = new HandleResolver({
      resolveTxt: async () => [`did=${DID}`, 'did=did:plc:bbbbbbbbbbbbbbbbbbbbbbbb'],
      fetch: (async (url: string) => {
        seen.push(String(url));
        return new Response(`${DID}\n`);
      }) as typeof fetch,
    });
    assert.equal(await resolver.resolve('alice.example.com'), DID);
    assert.deepEqual(seen, ['https://alice.example.com/.well-known/atproto-did']);
  });
  it('returns undefined when nothing answers, and rejects invalid handles', async () => {
    const resolver = new HandleResolver({ resolveTxt: async () => [], fetch: noHttp });
    assert.equal(await resolver.resolve('nobody.example.com'), undefined);
    await assert.rejects(resolver.resolve('not a handle'), /not a valid handle/);
  });
});

describe('DNS over HTTPS', () => {
  it('joins quoted TXT strings', async () => {
    assert.equal(parseTxtData('"did=did:plc:" "abc"'), 'did=did:plc:abc');
    const txt = dohResolveTxt({ endpoint: `${base}/dns-query` });
    assert.deepEqual(await txt('_atproto.alice.example.com'), [`did=${DID}`]);
  });
});
