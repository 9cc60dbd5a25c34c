/**
 * One-time codes mailed to an account (confirming or changing the address, resetting the
 * password, deleting the account, signing in, PLC operations): one outstanding code per account
 * and purpose, `XXXXX-XXXXX`, valid 15 minutes as in the reference, compared in constant time.
 */
import { randomInt, timingSafeEqual } from 'node:crypto';
import { InvalidRequest } from '../xrpc/errors.ts';
import { type AccountTables, isoTime } from './tables.ts';

/** Email tokens are valid this long (the reference's 15 minutes). */
export const EMAIL_TOKEN_TTL_SECONDS = 15 * 60;
export type EmailTokenPurpose =
  'plc_operation' | 'confirm_email' | 'update_email' | 'reset_password' | 'delete_account' | 'sign_in';

const EMAIL_TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function generateEmailToken(): string {
  let out = '';
  for (let i = 0; i < 10; i++) out += (i === 5 ? '-' : '') + EMAIL_TOKEN_CHARS[randomInt(EMAIL_TOKEN_CHARS.length)];
  return out;
}

export class EmailTokens {
  readonly #t: AccountTables;

  constructor(tables: AccountTables) {
    this.#t = tables;
  }

  /**
   * A new one-time token for `purpose` (e.g. plc_operation), replacing any earlier one:
   * `XXXXX-XXXXX`, easy to read out of a mail and type back.
   */
  create(did: string, purpose: EmailTokenPurpose): string {
    const token = generateEmailToken();
    this.#t
      .prepared(
        `INSERT INTO email_token (purpose, did, token, requested_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (purpose, did) DO UPDATE SET token = excluded.token, requested_at = excluded.requested_at`,
      )
      .run(purpose, did, token, isoTime(this.#t.now()));
    return token;
  }

  /**
   * Checks and uses up a token: 400 InvalidToken when it is not the one sent, 400 ExpiredToken
   * when older than `maxAgeSeconds`. A token works once.
   */
  consume(did: string, purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS): void {
    const row = this.#t
      .prepared<[string, string], { token: string; requested_at: string }>(
        'SELECT token, requested_at FROM email_token WHERE purpose = ? AND did = ?',
      )
      .get(purpose, did);
    const given = Buffer.from(token.trim().toUpperCase(), 'utf8');
    const stored = Buffer.from(row?.token ?? '', 'utf8');
    if (!row || given.length !== stored.length || !timingSafeEqual(given, stored)) {
      throw InvalidRequest('Token is invalid', 'InvalidToken');
    }
    if (Date.parse(row.requested_at) / 1000 + maxAgeSeconds < this.#t.now()) {
      throw InvalidRequest('Token is expired', 'ExpiredToken');
    }
    this.delete(did, purpose);
  }

  /**
   * The account a token was mailed to, for flows where the person is not signed in (password
   * reset): 400 InvalidToken when no account has it, ExpiredToken when it is too old.
   */
  didFor(purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS): string {
    // Every outstanding token of the purpose is compared in constant time, none skipped once one
    // matches: an SQL lookup by token would compare it byte by byte.
    const given = Buffer.from(token.trim().toUpperCase(), 'utf8');
    let found: { did: string; requested_at: string } | undefined;
    for (const row of this.#t
      .prepared<[string], { did: string; token: string; requested_at: string }>(
        'SELECT did, token, requested_at FROM email_token WHERE purpose = ?',
      )
      .iterate(purpose)) {
      const stored = Buffer.from(row.token, 'utf8');
      if (stored.length === given.length && timingSafeEqual(stored, given)) found = row;
    }
    if (!found) throw InvalidRequest('Token is invalid', 'InvalidToken');
    if (Date.parse(found.requested_at) / 1000 + maxAgeSeconds < this.#t.now()) {
      throw InvalidRequest('Token is expired', 'ExpiredToken');
    }
    return found.did;
  }

  delete(did: string, purpose: EmailTokenPurpose): void {
    this.#t.prepared('DELETE FROM email_token WHERE purpose = ? AND did = ?').run(purpose, did);
  }
}
