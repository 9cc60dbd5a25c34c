/**
 * DID documents cached in Redis (PDS_REDIS_SCRATCH_ADDRESS), as two server processes would
 * share them: a document one resolver fetched serves the other without a fetch, a `forget`
 * after a change reaches both, and with Redis stopped resolution goes on from the source.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { redisMissing, startRedis, type TestRedis } from '../../../test/support/redis.ts';
import { RedisScratch } from '../src/redis/scratch.ts';

const did = 'did:plc:abcdefghijklmnopqrstuvwx';

function document(endpoint: string) {
  return {
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: did,
    alsoKnownAs: ['at://shared.test'],
    verificationMethod: [],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: endpoint }],
  };
}

describe('DID documents shared through Redis', { skip: redisMissing() }, () => {
  let redis: TestRedis;
  const scratches: RedisScratch[] = [];
  let fetches = 0;
  let endpoint = 'https://one.example';
  const fetchDoc = (async () => {
    fetches++;
    return new Response(JSON.stringify(document(endpoint)), { headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const resolver = () => {
    const scratch = new RedisScratch(redis.address);
    scratches.push(scratch);
    return new DidResolver({
      plcUrl: 'https://plc.invalid',
      fetch: fetchDoc,
      sharedCache: scratch.namespace('portage:did:'),
    });
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const scratch of scratches) await scratch.close();
    await redis.stop();
  });

  it('serves one process the document another fetched, and forgets it for both', async () => {
    const a = resolver();
    const b = resolver();
    const first = await a.resolve(did);
    assert.equal(fetches, 1);
    const second = await b.resolve(did);
    assert.equal(fetches, 1, 'the second process read the shared cache');
    assert.deepEqual(second, first);

    endpoint = 'https://two.example';
    await a.forget(did);
    const c = resolver(); // a third process, with nothing in its own memory
    const fresh = await c.resolve(did);
    assert.equal(fetches, 2);
    assert.equal(JSON.stringify(fresh).includes('two.example'), true);
  });

  it('resolves from the source while Redis is down', async () => {
    const d = resolver();
    await redis.stop();
    const before = fetches;
    const doc = await d.resolve(did);
    assert.equal(fetches, before + 1);
    assert.equal(JSON.stringify(doc).includes(did), true);
  });
});
