/**
 * Forwarding to a real AppView: the reference's (@atproto/bsky through @atproto/dev-env's
 * TestBsky, on a throwaway PostgreSQL cluster) indexes Portage's own firehose and resolves
 * Portage's DIDs from the same PLC directory, and @atproto/api, talking to Portage only, reads
 * the social graph back through Portage: profiles, timeline, threads, notifications, author
 * feeds, with a password session and with an app password. Every service JWT Portage mints on
 * the way is checked by the AppView itself.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import type { TestBsky, TestBsync, TestFeedGen } from '@atproto/dev-env';
import { IdResolver } from '@atproto/identity';
import { verifyJwt } from '@atproto/xrpc-server';
import { findPostgresBin, startPostgres, type TestPostgres } from '../../../test/support/postgres.ts';
import { freePort, withTmpdir } from '../../../test/support/reference-peers.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';
import { until } from '../../../test/support/until.ts';
import { startTestPds, type TestPds } from './harness.ts';

// A 1x1 PNG: the smallest image the AppView indexes as one.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

describe(
  'forwarding to the reference AppView',
  { skip: findPostgresBin() ? false : 'PostgreSQL is not installed' },
  () => {
    let dir: string;
    let pg: TestPostgres | undefined;
    let plc: RunningPlcDirectory | undefined;
    let bsync: TestBsync | undefined;
    let bsky: TestBsky | undefined;
    let pds: TestPds | undefined;
    let feedGen: TestFeedGen | undefined;
    let feedUri = '';
    /** The authorization header of every getFeedSkeleton call the feed generator received. */
    const feedGenAuth: (string | undefined)[] = [];
    const alice = { agent: undefined as unknown as AtpAgent, did: '' };
    const bob = { agent: undefined as unknown as AtpAgent, did: '' };
    let postUri = '';

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'portage-proxy-appview-'));
      pg = await startPostgres();
      plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dir, 'plc') });
      const pdsPort = await freePort();
      const { TestBsky, TestBsync, TestFeedGen } = await import('@atproto/dev-env');
      const bsyncApiKey = 'bsync-api-key';
      bsync = await withTmpdir(dir, async () =>
        TestBsync.create({ port: await freePort(), apiKeys: [bsyncApiKey], dbUrl: pg!.url, dbSchema: 'bsync' }),
      );
      bsky = await withTmpdir(dir, async () =>
        TestBsky.create({
          port: await freePort(),
          plcUrl: plc!.url,
          // The AppView indexes Portage's firehose; it connects once Portage is up below.
          repoProvider: `ws://127.0.0.1:${pdsPort}`,
          dbPostgresUrl: pg!.url,
          dbPostgresSchema: 'appview',
          bsyncUrl: bsync!.url,
          bsyncApiKey,
        } as never),
      );
      pds = await startTestPds({
        plcUrl: plc.url,
        env: {
          PDS_PORT: String(pdsPort),
          PDS_BSKY_APP_VIEW_URL: bsky.url,
          PDS_BSKY_APP_VIEW_DID: bsky.serverDid,
        },
      });
      for (const [who, handle] of [
        [alice, 'alice.test'],
        [bob, 'bob.test'],
      ] as const) {
        who.agent = new AtpAgent({ service: pds.url });
        await who.agent.createAccount({ handle, email: `${handle}@example.com`, password: 'correct horse battery' });
        who.did = who.agent.session!.did;
      }

      const avatar = await alice.agent.uploadBlob(PNG, { encoding: 'image/png' });
      await alice.agent.com.atproto.repo.putRecord({
        repo: alice.did,
        collection: 'app.bsky.actor.profile',
        rkey: 'self',
        record: { $type: 'app.bsky.actor.profile', displayName: 'Alice', avatar: avatar.data.blob },
      });
      const image = await bob.agent.uploadBlob(PNG, { encoding: 'image/png' });
      const post = await bob.agent.post({
        text: 'hello from portage',
        embed: { $type: 'app.bsky.embed.images', images: [{ image: image.data.blob, alt: 'a dot' }] },
        createdAt: new Date().toISOString(),
      });
      postUri = post.uri;
      // Alice publishes a custom feed served by a feed generator of its own (a did:plc on the
      // same directory, its #bsky_fg endpoint on localhost); the generator serves bob's post.
      feedUri = `at://${alice.did}/app.bsky.feed.generator/portage-picks`;
      feedGen = await TestFeedGen.create(plc.url, {
        [feedUri]: async ({ req }) => {
          feedGenAuth.push(req.headers.authorization);
          // (`as never`: the handler's type wants the reference's branded at-uri string)
          return { encoding: 'application/json', body: { feed: [{ post: postUri as never }] } };
        },
      });
      await alice.agent.com.atproto.repo.putRecord({
        repo: alice.did,
        collection: 'app.bsky.feed.generator',
        rkey: 'portage-picks',
        record: {
          $type: 'app.bsky.feed.generator',
          did: feedGen.did,
          displayName: 'Portage picks',
          createdAt: new Date().toISOString(),
        },
      });
      await alice.agent.follow(bob.did);
      await alice.agent.like(post.uri, post.cid);
      // Everything above reaches the AppView through Portage's firehose.
      await until('the AppView to index the like', async () => {
        const { data } = await bob.agent.app.bsky.feed.getPostThread({ uri: postUri });
        const thread = data.thread as { post?: { likeCount?: number } };
        return thread.post?.likeCount === 1 ? true : undefined;
      });
    });

    after(async () => {
      // Portage first, so the AppView's firehose subscription ends cleanly.
      await pds?.close();
      await feedGen?.close();
      await bsky?.close();
      await bsync?.close();
      await plc?.close();
      await pg?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('answers getProfile from the AppView, avatar included', async () => {
      const { data, headers } = await bob.agent.getProfile({ actor: alice.did });
      assert.equal(data.did, alice.did);
      assert.equal(data.displayName, 'Alice');
      assert.match(data.avatar ?? '', /^https?:\/\//);
      assert.equal(data.followsCount, 1);
      assert.ok(headers['content-type']?.startsWith('application/json'));
      const mine = await alice.agent.getProfile({ actor: bob.did });
      assert.equal(mine.data.postsCount, 1);
      assert.ok(mine.data.viewer?.following, 'the AppView knows who asks: alice follows bob');
    });

    it('answers getTimeline and getAuthorFeed with the post and its image', async () => {
      const timeline = await until('the timeline', async () => {
        const { data } = await alice.agent.getTimeline({ limit: 10 });
        return data.feed.length > 0 ? data.feed : undefined;
      });
      assert.equal(timeline[0]!.post.uri, postUri);
      const embed = timeline[0]!.post.embed as { images?: { alt: string; thumb: string }[] };
      assert.equal(embed.images?.[0]?.alt, 'a dot');
      assert.match(embed.images![0]!.thumb, /^https?:\/\//);
      assert.ok(timeline[0]!.post.viewer?.like, 'alice liked it');
      const authorFeed = await alice.agent.getAuthorFeed({ actor: bob.did });
      assert.deepEqual(
        authorFeed.data.feed.map((f) => f.post.uri),
        [postUri],
      );
    });

    it('answers getPostThread with and without an atproto-proxy header', async () => {
      const plain = await alice.agent.getPostThread({ uri: postUri });
      const viaConfigured = await alice.agent.getPostThread(
        { uri: postUri },
        { headers: { 'atproto-proxy': `${bsky!.serverDid}#bsky_appview` } },
      );
      // bsky_notif names the same server in TestBsky's DID document: this one is resolved through PLC.
      const viaResolved = await alice.agent.getPostThread(
        { uri: postUri },
        { headers: { 'atproto-proxy': `${bsky!.serverDid}#bsky_notif` } },
      );
      for (const { data } of [plain, viaConfigured, viaResolved]) {
        const thread = data.thread as { post: { uri: string; likeCount: number; author: { did: string } } };
        assert.equal(thread.post.uri, postUri);
        assert.equal(thread.post.likeCount, 1);
        assert.equal(thread.post.author.did, bob.did);
      }
    });

    it('answers listNotifications: bob sees the follow and the like', async () => {
      const reasons = await until('the notifications', async () => {
        const { data } = await bob.agent.listNotifications();
        const found = data.notifications.map((n) => `${n.reason}:${n.author.did}`).sort();
        return found.length >= 2 ? found : undefined;
      });
      assert.deepEqual(reasons, [`follow:${alice.did}`, `like:${alice.did}`]);
    });

    it("answers getFeed of a custom feed: the generator's skeleton, hydrated by the AppView", async () => {
      const data = await until(
        'the AppView to index the feed generator',
        async () => (await bob.agent.app.bsky.feed.getFeed({ feed: feedUri })).data,
      );
      assert.deepEqual(
        data.feed.map((f) => f.post.uri),
        [postUri],
      );
      const [item] = data.feed;
      assert.equal(item!.post.author.did, bob.did);
      assert.equal((item!.post.record as { text?: string }).text, 'hello from portage');
      const embed = item!.post.embed as { images?: { alt: string }[] };
      assert.equal(embed.images?.[0]?.alt, 'a dot');

      // As the reference PDS does: the AppView passes the caller's token on to the generator, so
      // Portage addresses it to the generator's DID for getFeedSkeleton, signed with bob's key.
      const header = feedGenAuth.at(-1);
      assert.match(header ?? '', /^Bearer /);
      // The directory is on loopback, which the resolver's default (SSRF-guarded) fetch refuses.
      const resolver = new IdResolver({ plcUrl: plc!.url, fetch: globalThis.fetch });
      const payload = await verifyJwt(
        header!.slice('Bearer '.length),
        feedGen!.did,
        'app.bsky.feed.getFeedSkeleton',
        (did, forceRefresh) => resolver.did.resolveAtprotoKey(did, forceRefresh),
      );
      assert.equal(payload.iss, bob.did);
      assert.equal(payload.aud, feedGen!.did);
      assert.equal(payload.lxm, 'app.bsky.feed.getFeedSkeleton');

      // The generator record itself is read through Portage from the AppView too.
      const generator = await alice.agent.app.bsky.feed.getFeedGenerator({ feed: feedUri });
      assert.equal(generator.data.view.did, feedGen!.did);
      assert.equal(generator.data.view.creator.did, alice.did);
    });

    it('works the same with an app-password session', async () => {
      const { data: appPassword } = await bob.agent.com.atproto.server.createAppPassword({ name: 'phone' });
      const phone = new AtpAgent({ service: pds!.url });
      await phone.login({ identifier: bob.did, password: appPassword.password });
      const profile = await phone.getProfile({ actor: bob.did });
      assert.equal(profile.data.postsCount, 1);
      const notifications = await phone.listNotifications();
      assert.ok(notifications.data.notifications.length >= 2);
      const feed = await phone.getAuthorFeed({ actor: bob.did });
      assert.equal(feed.data.feed[0]?.post.uri, postUri);
    });

    it("shows the caller's own writes at once, indexed or not (read-after-write)", async () => {
      const { uri } = await bob.agent.post({ text: 'just now', createdAt: new Date().toISOString() });
      await bob.agent.com.atproto.repo.putRecord({
        repo: bob.did,
        collection: 'app.bsky.actor.profile',
        rkey: 'self',
        record: { $type: 'app.bsky.actor.profile', displayName: 'Bob, renamed' },
      });
      const feed = await bob.agent.getAuthorFeed({ actor: bob.did });
      assert.equal(feed.data.feed[0]?.post.uri, uri);
      const profile = await bob.agent.getProfile({ actor: bob.did });
      assert.equal(profile.data.displayName, 'Bob, renamed');
      const thread = await bob.agent.getPostThread({ uri });
      assert.equal((thread.data.thread as { post: { uri: string } }).post.uri, uri);
    });

    it('passes the AppView own errors through unchanged', async () => {
      await assert.rejects(
        alice.agent.getPostThread({ uri: `at://${bob.did}/app.bsky.feed.post/3jzfcijpj2z2a` }),
        (err: { status?: number; error?: string }) => err.status === 400 && err.error === 'NotFound',
      );
    });
  },
);
