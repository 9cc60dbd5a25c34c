/** reserveSigningKey: a DID moving in names its future signing key before its account exists here. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { startTestPds, type TestPds } from './harness.ts';

describe('reserveSigningKey', () => {
  let oldPds: TestPds;
  let newPds: TestPds;
  const password = 'reserve-password';

  before(async () => {
    oldPds = await startTestPds();
    newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:portage-new.test' } });
  });
  after(async () => {
    await newPds?.close();
    await oldPds?.close();
  });

  it('reserves one key per DID, and createAccount for that DID signs with it', async () => {
    const oldAgent = new AtpAgent({ service: oldPds.url });
    await oldAgent.createAccount({ handle: 'rita.test', email: 'rita@example.com', password });
    const did = oldAgent.session!.did;
    const anon = new AtpAgent({ service: newPds.url });
    const { data: first } = await anon.com.atproto.server.reserveSigningKey({ did });
    assert.match(first.signingKey, /^did:key:z/);
    const { data: again } = await anon.com.atproto.server.reserveSigningKey({ did });
    assert.equal(again.signingKey, first.signingKey, 'asking again gives the same key');

    const { data: auth } = await oldAgent.com.atproto.server.getServiceAuth({
      aud: 'did:web:portage-new.test',
      lxm: 'com.atproto.server.createAccount',
    });
    const newAgent = new AtpAgent({ service: newPds.url });
    await newAgent.com.atproto.server.createAccount(
      { did, handle: 'rita.test', email: 'rita@example.com', password },
      { headers: { authorization: `Bearer ${auth.token}` }, encoding: 'application/json' },
    );
    await newAgent.login({ identifier: did, password });
    const { data: credentials } = await newAgent.com.atproto.identity.getRecommendedDidCredentials();
    assert.equal((credentials.verificationMethods as { atproto: string }).atproto, first.signingKey);
    const reservedDir = join(newPds.ctx.actorStore.directory, 'reserved-keys');
    assert.deepEqual(existsSync(reservedDir) ? readdirSync(reservedDir) : [], [], 'the reservation is used up');
  });

  it('without a DID, reserves a fresh key each time', async () => {
    const anon = new AtpAgent({ service: newPds.url });
    const a = (await anon.com.atproto.server.reserveSigningKey({})).data.signingKey;
    const b = (await anon.com.atproto.server.reserveSigningKey({})).data.signingKey;
    assert.match(a, /^did:key:z/);
    assert.notEqual(a, b);
  });
});
