// Node's native SHA-256: synchronous and several times faster than a JS implementation.
// Selected through the package's "#sha256" import condition; browsers get sha256.browser.ts.
// The one-shot crypto.hash skips the Hash object createHash builds per call, which for the
// small inputs hashed by the thousand (MST keys, records, nodes) costs more than the hashing.
import { hash } from 'node:crypto';

export function sha256(data: Uint8Array): Uint8Array {
  const digest = hash('sha256', data, 'buffer');
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}
