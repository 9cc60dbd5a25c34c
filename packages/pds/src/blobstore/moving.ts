/**
 * The blob store of a server whose blobs are moving from one store to another
 * (`PORTAGE_BLOBSTORE_PREVIOUS`, while `portage blobs move` runs): new uploads go to the
 * current store; reads, existence checks and deletes look in both, so every blob is served
 * whether or not it has moved yet. A read that misses both asks the current store once more,
 * because the move may have copied the blob and removed the old copy between the two looks.
 *
 * An upload that arrived before the switch has its temporary file in the previous store; it is
 * made permanent there, and the next pass of the move picks it up.
 */
import type { Cid } from '@portage/atproto/cid';
import type { BlobReadResult, BlobStore, StoredTempBlob } from './blobstore.ts';

export class MovingBlobStore implements BlobStore {
  readonly current: BlobStore;
  readonly previous: BlobStore;

  constructor(current: BlobStore, previous: BlobStore) {
    this.current = current;
    this.previous = previous;
  }

  putTemp(did: string, body: AsyncIterable<Uint8Array>, maxSize: number): Promise<StoredTempBlob> {
    return this.current.putTemp(did, body, maxSize);
  }

  async makePermanent(did: string, tempKey: string, cid: Cid): Promise<void> {
    try {
      await this.current.makePermanent(did, tempKey, cid);
    } catch (err) {
      // Uploaded before the switch: its temporary copy is in the previous store.
      await this.previous.makePermanent(did, tempKey, cid).catch(() => {
        throw err;
      });
    }
  }

  async deleteTemp(did: string, tempKey: string): Promise<void> {
    await Promise.all([this.current.deleteTemp(did, tempKey), this.previous.deleteTemp(did, tempKey)]);
  }

  async hasPermanent(did: string, cid: Cid): Promise<boolean> {
    return (
      (await this.current.hasPermanent(did, cid)) ||
      (await this.previous.hasPermanent(did, cid)) ||
      this.current.hasPermanent(did, cid)
    );
  }

  async read(did: string, cid: Cid): Promise<BlobReadResult | undefined> {
    return (await this.current.read(did, cid)) ?? (await this.previous.read(did, cid)) ?? this.current.read(did, cid);
  }

  async delete(did: string, cids: Cid[]): Promise<void> {
    await Promise.all([this.current.delete(did, cids), this.previous.delete(did, cids)]);
  }

  async deleteAll(did: string): Promise<void> {
    await Promise.all([this.current.deleteAll(did), this.previous.deleteAll(did)]);
  }

  async sweepTemp(maxAgeMs: number): Promise<number> {
    const [a, b] = await Promise.all([this.current.sweepTemp(maxAgeMs), this.previous.sweepTemp(maxAgeMs)]);
    return a + b;
  }

  checkWritable(): Promise<void> {
    return this.current.checkWritable();
  }

  async storedBytes(): Promise<number> {
    const [a, b] = await Promise.all([this.current.storedBytes(), this.previous.storedBytes()]);
    return a + b;
  }

  async *listPermanent(): AsyncGenerator<{ did: string; cid: string; size: number }> {
    yield* this.current.listPermanent();
    yield* this.previous.listPermanent();
  }

  async close(): Promise<void> {
    await Promise.all([this.current.close?.(), this.previous.close?.()]);
  }
}
