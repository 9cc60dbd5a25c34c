/**
 * The old server's repository export into the browser backup as soon as the account is known,
 * while the person still types a password and fills in the new account: getRepo is public, and
 * on a server that compresses the export it is the slowest part of the move. The run then finds
 * the CAR stored at the old head and imports it from there (it still downloads it itself when
 * this failed or the repository changed since).
 *
 * Best effort throughout: any failure leaves the backup as it was.
 */
import type { BrowserBackup } from './backup.ts';

/** A download that receives nothing for this long is given up (the run fetches the CAR itself). */
const STALL_MS = 30_000;

export async function downloadRepoEarly(backup: BrowserBackup, pds: string, did: string): Promise<void> {
  const base = pds.replace(/\/+$/, '');
  const stop = new AbortController();
  let timer = setTimeout(() => stop.abort(), STALL_MS);
  const stillAlive = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stop.abort(), STALL_MS);
  };
  try {
    const latest = await fetch(`${base}/xrpc/com.atproto.sync.getLatestCommit?did=${encodeURIComponent(did)}`, {
      signal: stop.signal,
    });
    if (!latest.ok) return;
    const head = (await latest.json()) as { cid?: unknown };
    if (typeof head.cid !== 'string' || (await backup.storedRepoCommit()) === head.cid) return;
    stillAlive();
    const res = await fetch(`${base}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`, {
      signal: stop.signal,
    });
    if (!res.ok || !res.body) return;
    const watched = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          stillAlive();
          controller.enqueue(chunk);
        },
      }),
    );
    await backup.writeRepo(watched, head.cid);
  } catch {
    // The run downloads the repository itself.
  } finally {
    clearTimeout(timer);
  }
}
