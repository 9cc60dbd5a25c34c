/**
 * Read-after-write, as the reference does it: an AppView indexes the firehose a moment after a
 * write, so a user who posts and at once reloads their feed would not see the post. When the
 * AppView's answer says (atproto-repo-rev) it has indexed the caller's repository only up to an
 * older rev than ours, the caller's newer posts and profile are merged into the answer of
 * getProfile(s), getTimeline, getAuthorFeed, getPostThread and getActorLikes. Only then is the
 * answer read whole; otherwise it streams through untouched.
 */
import type { ActorStore } from '../actor-store/actor-store.ts';
import type { AccountManager } from '../account/account-manager.ts';

export const READ_AFTER_WRITE_METHODS: ReadonlySet<string> = new Set([
  'app.bsky.actor.getProfile',
  'app.bsky.actor.getProfiles',
  'app.bsky.feed.getTimeline',
  'app.bsky.feed.getAuthorFeed',
  'app.bsky.feed.getPostThread',
  'app.bsky.feed.getActorLikes',
]);

const POST = 'app.bsky.feed.post';
const PROFILE = 'app.bsky.actor.profile';
/** At most this many of the newest records are merged (the reference's bound). */
const MAX_LOCAL_RECORDS = 10;

type Obj = Record<string, unknown>;

export interface LocalRecord {
  uri: string;
  cid: string;
  indexedAt: string;
  record: Obj;
}

export interface LocalRecords {
  profile: LocalRecord | undefined;
  /** Oldest first. */
  posts: LocalRecord[];
}

export interface LocalViewDeps {
  actorStore: ActorStore;
  accountManager: AccountManager;
  /** Builds an image URL: pattern (avatar, banner, feed_thumbnail, feed_fullsize), DID, blob CID. */
  imageUrl: (pattern: string, did: string, cid: string) => string;
}

/**
 * The caller's posts and profile written after `rev`, or undefined when there are none (or when
 * nothing of ours is as old as `rev`: the AppView's rev is from another history, e.g. before a
 * migration, and merging would guess).
 */
export function recordsSinceRev(deps: LocalViewDeps, did: string, rev: string): LocalRecords | undefined {
  const root = deps.actorStore.getRoot(did);
  if (!root || root.rev <= rev) return undefined;
  const rows = deps.actorStore.recordsWrittenSince(did, rev, [POST, PROFILE], MAX_LOCAL_RECORDS);
  if (!rows || rows.length === 0) return undefined;
  const out: LocalRecords = { profile: undefined, posts: [] };
  for (const row of rows) {
    const stored = deps.actorStore.getRecord(did, row.collection, row.rkey);
    if (!stored || !isObj(stored.value)) continue;
    const local = { uri: row.uri, cid: stored.cid, indexedAt: row.indexedAt, record: stored.value };
    if (row.collection === PROFILE && row.rkey === 'self') out.profile = local;
    else if (row.collection === POST) out.posts.push(local);
  }
  return out.profile || out.posts.length > 0 ? out : undefined;
}

/** The AppView's answer with the caller's newer records merged in (unchanged where they do not belong). */
export function mergeLocal(deps: LocalViewDeps, nsid: string, did: string, data: Obj, local: LocalRecords): Obj {
  const viewer = new LocalViewer(deps, did);
  switch (nsid) {
    case 'app.bsky.actor.getProfile':
      return local.profile && data.did === did ? viewer.profileDetailed(data, local.profile.record) : data;
    case 'app.bsky.actor.getProfiles': {
      const profiles = local.profile && Array.isArray(data.profiles) ? data.profiles : undefined;
      if (!profiles) return data;
      return {
        ...data,
        profiles: profiles.map((p: unknown) =>
          isObj(p) && p.did === did ? viewer.profileDetailed(p, local.profile!.record) : p,
        ),
      };
    }
    case 'app.bsky.feed.getTimeline':
      return Array.isArray(data.feed) ? { ...data, feed: viewer.insertPosts(data.feed as Obj[], local.posts) } : data;
    case 'app.bsky.feed.getAuthorFeed': {
      if (!Array.isArray(data.feed) || !isUsersFeed(data.feed as Obj[], did)) return data;
      const feed = viewer.updateAuthors(data.feed as Obj[], local.profile);
      return { ...data, feed: viewer.insertPosts(feed, local.posts) };
    }
    case 'app.bsky.feed.getActorLikes':
      return Array.isArray(data.feed)
        ? { ...data, feed: viewer.updateAuthors(data.feed as Obj[], local.profile) }
        : data;
    case 'app.bsky.feed.getPostThread':
      return isObj(data.thread) && isObj(data.thread.post)
        ? { ...data, thread: viewer.addReplies(data.thread, local.posts) }
        : data;
    default:
      return data;
  }
}

/**
 * getPostThread of the caller's own post the AppView has not seen yet: a thread built from the
 * local record (and the caller's newer replies to it), or undefined when it is not such a post.
 */
export function localThread(deps: LocalViewDeps, did: string, uri: string, local: LocalRecords): Obj | undefined {
  const found = local.posts.find((p) => p.uri === uri);
  if (!found) return undefined;
  const viewer = new LocalViewer(deps, did);
  const thread = { $type: 'app.bsky.feed.defs#threadViewPost', post: viewer.post(found), replies: [] };
  return {
    thread: viewer.addReplies(
      thread,
      local.posts.filter((p) => p.uri !== uri),
    ),
  };
}

/** When the oldest merged record was written, in ms before now (the Atproto-Upstream-Lag header). */
export function upstreamLag(local: LocalRecords): number | undefined {
  const times = [local.profile?.indexedAt, ...local.posts.map((p) => p.indexedAt)].filter((t) => t !== undefined);
  if (times.length === 0) return undefined;
  const oldest = times.sort()[0]!;
  return Math.max(0, Date.now() - new Date(oldest).getTime());
}

function isUsersFeed(feed: Obj[], did: string): boolean {
  const first = feed[0];
  if (!first || !isObj(first.post)) return false;
  const reason = isObj(first.reason) ? first.reason : undefined;
  if (!reason) return isObj(first.post.author) && first.post.author.did === did;
  return reason.$type === 'app.bsky.feed.defs#reasonRepost' && isObj(reason.by) && reason.by.did === did;
}

class LocalViewer {
  readonly #deps: LocalViewDeps;
  readonly did: string;
  #basic: Obj | undefined;

  constructor(deps: LocalViewDeps, did: string) {
    this.#deps = deps;
    this.did = did;
  }

  #image(pattern: string, blob: unknown): string | undefined {
    const cid = blobCid(blob);
    return cid ? this.#deps.imageUrl(pattern, this.did, cid) : undefined;
  }

  /** The author view of the caller, from its account and current profile record. */
  #author(): Obj {
    if (this.#basic) return this.#basic;
    const account = this.#deps.accountManager.getAccount(this.did);
    const profile = this.#deps.actorStore.getRecord(this.did, PROFILE, 'self')?.value;
    const record = isObj(profile) ? profile : {};
    this.#basic = {
      did: this.did,
      handle: account?.handle ?? 'handle.invalid',
      ...(typeof record.displayName === 'string' ? { displayName: record.displayName } : {}),
      ...(this.#image('avatar', record.avatar) ? { avatar: this.#image('avatar', record.avatar) } : {}),
    };
    return this.#basic;
  }

  profileBasic(view: Obj, record: Obj): Obj {
    return { ...view, displayName: record.displayName, avatar: this.#image('avatar', record.avatar) };
  }

  profileDetailed(view: Obj, record: Obj): Obj {
    return {
      ...this.profileBasic(view, record),
      description: record.description,
      banner: this.#image('banner', record.banner),
    };
  }

  updateAuthors(feed: Obj[], profile: LocalRecord | undefined): Obj[] {
    if (!profile) return feed;
    return feed.map((item) => {
      const post = isObj(item.post) ? item.post : undefined;
      if (!post || !isObj(post.author) || post.author.did !== this.did) return item;
      return { ...item, post: { ...post, author: this.profileBasic(post.author, profile.record) } };
    });
  }

  /** A post view of a local record; counts are zero right after it was written. */
  post(local: LocalRecord): Obj {
    const embed = this.#embed(local.record.embed);
    return {
      uri: local.uri,
      cid: local.cid,
      author: this.#author(),
      record: local.record,
      ...(embed ? { embed } : {}),
      replyCount: 0,
      repostCount: 0,
      likeCount: 0,
      quoteCount: 0,
      indexedAt: local.indexedAt,
      labels: [],
    };
  }

  /** Inserts the newer posts in order of indexedAt; the ones older than the page's last item are left to the next page. */
  insertPosts(feed: Obj[], posts: LocalRecord[]): Obj[] {
    if (posts.length === 0) return feed;
    const out = [...feed];
    const indexedAt = (item: Obj): string => (isObj(item.post) ? String(item.post.indexedAt ?? '') : '');
    const last = out.length > 0 ? indexedAt(out[out.length - 1]!) : '';
    const present = new Set(out.map((item) => (isObj(item.post) ? item.post.uri : undefined)));
    for (const local of [...posts].reverse()) {
      if (local.indexedAt <= last || present.has(local.uri)) continue;
      const at = out.findIndex((item) => indexedAt(item) < local.indexedAt);
      const item = { post: this.post(local) };
      if (at >= 0) out.splice(at, 0, item);
      else out.push(item);
    }
    return out;
  }

  /** Puts the caller's newer replies under the posts they answer. */
  addReplies(thread: Obj, posts: LocalRecord[]): Obj {
    const post = thread.post as Obj;
    const root = rootOf(post.record);
    const inThread = posts.filter((p) => {
      const r = rootOf(p.record);
      return r !== undefined && (r === post.uri || r === root);
    });
    let out = thread;
    for (const reply of inThread) out = this.#insertReply(out, reply);
    return out;
  }

  #insertReply(view: Obj, reply: LocalRecord): Obj {
    const post = view.post as Obj;
    const parent =
      isObj(reply.record.reply) && isObj(reply.record.reply.parent) ? reply.record.reply.parent.uri : undefined;
    const replies = Array.isArray(view.replies) ? (view.replies as unknown[]) : undefined;
    if (parent === post.uri) {
      if (replies?.some((r) => isObj(r) && isObj(r.post) && r.post.uri === reply.uri)) return view;
      const node = { $type: 'app.bsky.feed.defs#threadViewPost', post: this.post(reply), replies: [] };
      return { ...view, replies: [node, ...(replies ?? [])] };
    }
    if (!replies) return view;
    return {
      ...view,
      replies: replies.map((r) =>
        isObj(r) && r.$type === 'app.bsky.feed.defs#threadViewPost' && isObj(r.post) ? this.#insertReply(r, reply) : r,
      ),
    };
  }

  /** Images and links are shown from the record; quoted records are left to the AppView. */
  #embed(embed: unknown): Obj | undefined {
    if (!isObj(embed)) return undefined;
    if (embed.$type === 'app.bsky.embed.images' && Array.isArray(embed.images)) {
      return {
        $type: 'app.bsky.embed.images#view',
        images: embed.images.filter(isObj).map((img) => ({
          thumb: this.#image('feed_thumbnail', img.image),
          fullsize: this.#image('feed_fullsize', img.image),
          alt: typeof img.alt === 'string' ? img.alt : '',
          ...(isObj(img.aspectRatio) ? { aspectRatio: img.aspectRatio } : {}),
        })),
      };
    }
    if (embed.$type === 'app.bsky.embed.external' && isObj(embed.external)) {
      const { uri, title, description, thumb } = embed.external;
      const thumbUrl = this.#image('feed_thumbnail', thumb);
      return {
        $type: 'app.bsky.embed.external#view',
        external: { uri, title, description, ...(thumbUrl ? { thumb: thumbUrl } : {}) },
      };
    }
    return undefined;
  }
}

function rootOf(record: unknown): unknown {
  return isObj(record) && isObj(record.reply) && isObj(record.reply.root) ? record.reply.root.uri : undefined;
}

function blobCid(blob: unknown): string | undefined {
  if (!isObj(blob)) return undefined;
  if (isObj(blob.ref) && typeof blob.ref.$link === 'string') return blob.ref.$link;
  return typeof blob.cid === 'string' ? blob.cid : undefined; // legacy blob form
}

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
