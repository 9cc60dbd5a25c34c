/** /tls-check: the question a TLS proxy (Caddy's on-demand TLS) asks before getting a certificate. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { startTestPds, type TestPds } from './harness.ts';

describe('/tls-check', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds();
    await new AtpAgent({ service: pds.url }).createAccount({
      handle: 'alice.test',
      email: 'alice@example.com',
      password: 'alice-password',
    });
  });
  after(() => pds?.close());

  const check = async (query: string) => {
    const res = await fetch(`${pds.url}/tls-check${query}`);
    return { status: res.status, body: await res.json() };
  };

  it("says yes for the server's own name and for its accounts' handles", async () => {
    assert.deepEqual(await check('?domain=localhost'), { status: 200, body: { success: true } });
    assert.deepEqual(await check('?domain=alice.test'), { status: 200, body: { success: true } });
    assert.deepEqual(await check('?domain=ALICE.test'), { status: 200, body: { success: true } });
  });

  it('says no for a handle nobody has, a name outside the handle domains, and no name', async () => {
    const unknown = await check('?domain=bob.test');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, 'NotFound');
    const foreign = await check('?domain=example.com');
    assert.equal(foreign.status, 400);
    assert.equal(foreign.body.error, 'InvalidRequest');
    assert.match(foreign.body.message, /handles are not provided on this domain/);
    const missing = await check('');
    assert.equal(missing.status, 400);
    assert.match(missing.body.message, /missing domain/);
  });
});
