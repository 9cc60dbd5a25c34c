// Node's native SHA-256: synchronous and several times faster than a JS implementation.
// Selected through the package's "#sha256" import condition; browsers get sha256.browser.ts.
import { createHash } from 'node:crypto';

export function sha256(data: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(data).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}
