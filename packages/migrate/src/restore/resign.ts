/**
 * A did:web keeps no history of its keys, so a server importing a repository checks the commit
 * against the one key the document names now. While a restore imports, that is the key the
 * restore holds (temporary-key.ts), not the gone server's key the backup's commit is signed with.
 * So for a did:web the restore signs the same tree again with its key: a new commit over the
 * backup's MST root, its rev one microsecond after the backup's, put first in a CAR that then
 * carries every block of the backup. The signature is not deterministic, so a run started again
 * after a kill imports once more (an import replaces the repository: nothing doubles).
 */
import { type Cid, formatCid } from '@portage/atproto/cid';
import { readCar, toReadableStream, writeCar } from '@portage/atproto/car';
import type { SigningKey } from '@portage/atproto/crypto';
import { decodeCommit, signCommit } from '@portage/atproto/repo/commit';
import { formatTid, parseTid } from '@portage/atproto/tid';

type CarBody = Blob | ReadableStream<Uint8Array>;

export interface ResignedRepo {
  commit: string;
  rev: string;
  /** The CAR: the new commit, then every block of the backup's (read afresh on each call). */
  body(): ReadableStream<Uint8Array>;
}

/** `open` gives the backup's CAR afresh on each call. */
export async function resignRepo(open: () => Promise<CarBody>, did: string, key: SigningKey): Promise<ResignedRepo> {
  const first = await readCar(streamOf(await open()), { requireRoot: true });
  const root = first.roots[0] as Cid;
  let old: ReturnType<typeof decodeCommit> | undefined;
  for await (const block of first.blocks) {
    if (formatCid(block.cid) === formatCid(root)) {
      old = decodeCommit(block.bytes);
      break;
    }
  }
  if (!old) throw new Error('the backup CAR does not hold its root commit');
  const { timestamp, clockId } = parseTid(old.rev);
  const rev = formatTid(timestamp + 1, clockId);
  const signed = await signCommit({ did, data: old.data, rev }, key);
  async function* blocks() {
    yield { cid: signed.cid, bytes: signed.bytes };
    const car = await readCar(streamOf(await open()), { requireRoot: true });
    for await (const block of car.blocks) yield block;
  }
  return { commit: formatCid(signed.cid), rev, body: () => toReadableStream(writeCar([signed.cid], blocks())) };
}

function streamOf(body: CarBody): ReadableStream<Uint8Array> {
  return body instanceof Blob ? (body.stream() as ReadableStream<Uint8Array>) : body;
}
