/** A post with one image, for tests of what a repository's records and blobs allow. */
import type { AtpAgent } from '@atproto/api';

/** A 1x1 PNG. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

/** Uploads PNG and posts it from the signed-in `agent`: the blob's CID and the record's URI and CID. */
export async function postPicture(agent: AtpAgent): Promise<{ blobCid: string; uri: string; cid: string }> {
  const { data: blob } = await agent.com.atproto.repo.uploadBlob(PNG, { encoding: 'image/png' });
  const { data: created } = await agent.com.atproto.repo.createRecord({
    repo: agent.session!.did,
    collection: 'app.bsky.feed.post',
    record: {
      $type: 'app.bsky.feed.post',
      text: 'a picture',
      createdAt: new Date().toISOString(),
      embed: { $type: 'app.bsky.embed.images', images: [{ image: blob.blob, alt: 'a pixel' }] },
    },
  });
  return { blobCid: blob.blob.ref.toString(), uri: created.uri, cid: created.cid };
}
