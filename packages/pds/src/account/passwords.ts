/**
 * Password hashing with scrypt (N=2^14, r=8, p=1, 64-byte key, 16-byte salt), stored as
 * `salt:hash` in hex: the reference PDS's format, so an imported account database keeps
 * working. The password is hashed as given, never normalized, as the reference does: a hash
 * from either server verifies with the other. Hashing runs on libuv's thread pool, off the
 * event loop.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const KEY_LENGTH = 64;

function scryptAsync(password: string, salt: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, { N: 16384, r: 8, p: 1 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16).toString('hex');
  const hash = await scryptAsync(password, salt);
  return `${salt}:${hash.toString('hex')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [salt, hashHex] = stored.split(':');
  if (!salt || !hashHex) return false;
  const expected = Buffer.from(hashHex, 'hex');
  if (expected.length !== KEY_LENGTH) return false;
  if (timingSafeEqual(expected, await scryptAsync(password, salt))) return true;
  // Earlier Portage versions hashed the NFKC form: their accounts keep signing in.
  const nfkc = password.normalize('NFKC');
  return nfkc !== password && timingSafeEqual(expected, await scryptAsync(nfkc, salt));
}

// Lower-case base32 letters and digits, as in the reference's app passwords.
const APP_PASSWORD_CHARS = 'abcdefghijklmnopqrstuvwxyz234567';

/** A new app password: four groups of four, `xxxx-xxxx-xxxx-xxxx`. */
export function generateAppPassword(): string {
  const bytes = randomBytes(16);
  const chars = Array.from(bytes, (b) => APP_PASSWORD_CHARS[b & 31]!);
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join('')).join('-');
}

export const APP_PASSWORD_RE = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/;

/** Invite codes: `<host>-<5>-<5>`, readable and hard to guess. */
export function generateInviteCode(hostname: string): string {
  const bytes = randomBytes(10);
  const chars = Array.from(bytes, (b) => APP_PASSWORD_CHARS[b & 31]!).join('');
  return `${hostname.replace(/\./g, '-')}-${chars.slice(0, 5)}-${chars.slice(5)}`;
}
