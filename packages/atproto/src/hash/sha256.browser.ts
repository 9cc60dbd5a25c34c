// Synchronous SHA-256 for browsers. WebCrypto's digest is async and costs a microtask round trip
// per call, which is ruinous when hashing thousands of small repository blocks one by one.
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}
