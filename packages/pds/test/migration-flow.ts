/**
 * The canonical account migration (REFERENCE.md "Migration, as the reference does it", steps
 * 1-11), driven by the official client @atproto/api exactly as migration tools do it, so the
 * tests prove Portage works with what users already run, in either role.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AtpAgent } from '@atproto/api';

export interface MigrationEnds {
  /** Logged in to the old PDS with the account password (step 1). */
  oldAgent: AtpAgent;
  newServiceUrl: string;
  handle: string;
  email: string;
  password: string;
  /** Reads the PLC-operation token the old PDS sent (step 9). */
  readPlcToken: (did: string) => Promise<string>;
}

export interface MigrationResult {
  newAgent: AtpAgent;
  did: string;
  blobsMoved: number;
}

export async function migrateAccount(ends: MigrationEnds): Promise<MigrationResult> {
  const { oldAgent } = ends;
  const did = oldAgent.session!.did;
  const newAgent = new AtpAgent({ service: ends.newServiceUrl });

  // 2-4: the new PDS's DID, a service JWT from the old PDS, the account created deactivated.
  const { data: describe } = await newAgent.com.atproto.server.describeServer();
  const { data: auth } = await oldAgent.com.atproto.server.getServiceAuth({
    aud: describe.did,
    lxm: 'com.atproto.server.createAccount',
    exp: Math.floor(Date.now() / 1000) + 15 * 60,
  });
  await newAgent.com.atproto.server.createAccount(
    { did, handle: ends.handle, email: ends.email, password: ends.password },
    { headers: { authorization: `Bearer ${auth.token}` }, encoding: 'application/json' },
  );
  await newAgent.login({ identifier: did, password: ends.password });

  // 5: repository.
  const { data: car } = await oldAgent.com.atproto.sync.getRepo({ did });
  await newAgent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });

  // 6: blobs, until the new PDS misses none.
  let blobsMoved = 0;
  let cursor: string | undefined;
  for (;;) {
    const { data: page } = await newAgent.com.atproto.repo.listMissingBlobs({ limit: 100, cursor });
    for (const blob of page.blobs) {
      const res = await oldAgent.com.atproto.sync.getBlob({ did, cid: blob.cid });
      await newAgent.com.atproto.repo.uploadBlob(res.data, { encoding: res.headers['content-type'] });
      blobsMoved++;
    }
    if (!page.cursor) break;
    cursor = page.cursor;
  }
  const { data: missing } = await newAgent.com.atproto.repo.listMissingBlobs({ limit: 1000 });
  assert.deepEqual(missing.blobs, [], 'no blob left behind');

  // 7: preferences.
  const { data: prefs } = await oldAgent.app.bsky.actor.getPreferences();
  await newAgent.app.bsky.actor.putPreferences({ preferences: prefs.preferences });

  // 8-10: identity: credentials from the new PDS, signed by the old PDS, submitted by the new.
  const { data: credentials } = await newAgent.com.atproto.identity.getRecommendedDidCredentials();
  await oldAgent.com.atproto.identity.requestPlcOperationSignature();
  const token = await ends.readPlcToken(did);
  const { data: signed } = await oldAgent.com.atproto.identity.signPlcOperation({
    token,
    rotationKeys: credentials.rotationKeys,
    alsoKnownAs: credentials.alsoKnownAs,
    verificationMethods: credentials.verificationMethods,
    services: credentials.services,
  });
  await newAgent.com.atproto.identity.submitPlcOperation({ operation: signed.operation });

  // 11: switch over.
  await newAgent.com.atproto.server.activateAccount();
  await oldAgent.com.atproto.server.deactivateAccount({});
  return { newAgent, did, blobsMoved };
}

/** Fills an account with records (one referencing each blob), blobs and preferences. */
export async function fillAccount(agent: AtpAgent, opts: { records: number; blobs: number }): Promise<void> {
  const did = agent.session!.did;
  const writes = [];
  for (let i = 0; i < opts.records; i++) {
    writes.push({
      $type: 'com.atproto.repo.applyWrites#create' as const,
      collection: 'app.bsky.feed.post',
      value: { $type: 'app.bsky.feed.post', text: `post ${i}`, createdAt: new Date().toISOString() },
    });
  }
  for (let i = 0; i < writes.length; i += 200) {
    await agent.com.atproto.repo.applyWrites({ repo: did, writes: writes.slice(i, i + 200) });
  }
  for (let i = 0; i < opts.blobs; i++) {
    const { data } = await agent.com.atproto.repo.uploadBlob(randomBytes(3000 + i), { encoding: 'image/png' });
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      record: {
        $type: 'app.bsky.feed.post',
        text: `picture ${i}`,
        createdAt: new Date().toISOString(),
        embed: { $type: 'app.bsky.embed.images', images: [{ image: data.blob, alt: `blob ${i}` }] },
      },
    });
  }
  await agent.app.bsky.actor.putPreferences({
    preferences: [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: true }],
  });
}

/** Records (uri -> cid), blob CIDs and preferences of an account, for before/after comparison. */
export async function snapshot(
  agent: AtpAgent,
  did: string,
): Promise<{ records: Map<string, string>; blobs: string[]; preferences: unknown[] }> {
  const records = new Map<string, string>();
  const { data: repo } = await agent.com.atproto.repo.describeRepo({ repo: did });
  for (const collection of repo.collections) {
    let cursor: string | undefined;
    do {
      const { data } = await agent.com.atproto.repo.listRecords({ repo: did, collection, limit: 100, cursor });
      for (const r of data.records) records.set(r.uri, r.cid);
      cursor = data.records.length === 100 ? data.cursor : undefined;
    } while (cursor);
  }
  const blobs: string[] = [];
  let cursor: string | undefined;
  do {
    const { data } = await agent.com.atproto.sync.listBlobs({ did, limit: 500, cursor });
    blobs.push(...data.cids);
    cursor = data.cids.length === 500 ? data.cursor : undefined;
  } while (cursor);
  const { data: prefs } = await agent.app.bsky.actor.getPreferences();
  return { records, blobs: blobs.sort(), preferences: prefs.preferences };
}
