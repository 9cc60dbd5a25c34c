/**
 * Invite codes: creating them (the admin's createInviteCodes, an account's own codes), checking
 * one at sign-up and recording its use, listing an account's codes with their uses.
 */
import { InvalidRequest } from '../xrpc/errors.ts';
import { generateInviteCode } from './passwords.ts';
import { type AccountTables, isoTime } from './tables.ts';

export interface InviteCodeInfo {
  code: string;
  available: number;
  disabled: boolean;
  forAccount: string;
  createdBy: string;
  createdAt: string;
  uses: { usedBy: string; usedAt: string }[];
}

interface InviteRow {
  code: string;
  available_uses: number;
  disabled: number;
  for_account: string;
  created_by: string;
  created_at: string;
}

/** The most uses one invite code may have, and the most codes one call may create. */
const MAX_INVITE_CODES = 10_000;

/** What an invite needs to know of the account it was given to. */
export type InviteOwnerLookup = (did: string) => { invitesDisabled: boolean; takedownRef: string | null } | undefined;

export class Invites {
  readonly #t: AccountTables;
  readonly #hostname: string;
  readonly #owner: InviteOwnerLookup;

  constructor(tables: AccountTables, hostname: string, owner: InviteOwnerLookup) {
    this.#t = tables;
    this.#hostname = hostname;
    this.#owner = owner;
  }

  create(args: { forAccounts: string[]; count: number; useCount: number; createdBy: string }): {
    account: string;
    codes: string[];
  }[] {
    // The lexicon leaves these unbounded: a code is used at least once, and one call is bounded.
    if (args.useCount < 1 || args.useCount > MAX_INVITE_CODES) {
      throw InvalidRequest(`useCount must be between 1 and ${MAX_INVITE_CODES}`);
    }
    if (args.forAccounts.length * args.count > MAX_INVITE_CODES) {
      throw InvalidRequest(`Too many codes requested at once (max ${MAX_INVITE_CODES})`);
    }
    const createdAt = isoTime(this.#t.now());
    const insert = this.#t.prepared(
      'INSERT INTO invite_code (code, available_uses, for_account, created_by, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    return this.#t.db.transaction(() =>
      args.forAccounts.map((account) => {
        const codes: string[] = [];
        for (let i = 0; i < args.count; i++) {
          const code = generateInviteCode(this.#hostname);
          insert.run(code, args.useCount, account, args.createdBy, createdAt);
          codes.push(code);
        }
        return { account, codes };
      }),
    )();
  }

  /**
   * The codes an account has earned by now and not yet been given, as the reference counts them:
   * one per `intervalMs` of the account's life (only the part after `epochMs`), at most five
   * unused at a time, codes the admin gave not counted. Counted and created in one transaction,
   * so two calls at once cannot both create. An account whose invites are disabled still gets
   * them, disabled, for the record. Returns the new codes.
   */
  createEarned(did: string, opts: { accountCreatedAt: string; epochMs: number; intervalMs: number }): string[] {
    const owner = this.#owner(did);
    if (!owner) return [];
    return this.#t.db.transaction(() => {
      const toCreate = earnedCodesToCreate({
        nowMs: this.#t.now() * 1000,
        accountCreatedMs: Date.parse(opts.accountCreatedAt),
        epochMs: opts.epochMs,
        intervalMs: opts.intervalMs,
        codes: this.forAccount(did, { includeUsed: true }),
      });
      if (toCreate <= 0) return [];
      const createdAt = isoTime(this.#t.now());
      const insert = this.#t.prepared(
        `INSERT INTO invite_code (code, available_uses, disabled, for_account, created_by, created_at)
         VALUES (?, 1, ?, ?, ?, ?)`,
      );
      const codes: string[] = [];
      for (let i = 0; i < toCreate; i++) {
        const code = generateInviteCode(this.#hostname);
        insert.run(code, owner.invitesDisabled ? 1 : 0, did, did, createdAt);
        codes.push(code);
      }
      return codes;
    })();
  }

  /** Throws 400 InvalidInviteCode unless the code exists, is enabled and has a use left. */
  ensureAvailable(code: string): void {
    const row = this.#t
      .prepared<[string], { available_uses: number; disabled: number; for_account: string }>(
        'SELECT available_uses, disabled, for_account FROM invite_code WHERE code = ?',
      )
      .get(code);
    const used =
      this.#t.prepared<[string], { n: number }>('SELECT count(*) AS n FROM invite_code_use WHERE code = ?').get(code)
        ?.n ?? 0;
    const owner = row ? this.#owner(row.for_account) : undefined;
    if (!row || row.disabled === 1 || used >= row.available_uses || owner?.invitesDisabled || owner?.takedownRef) {
      throw InvalidRequest('Provided invite code not available', 'InvalidInviteCode');
    }
  }

  /** Records a use of the code (checked first); call inside the sign-up's transaction. */
  use(code: string, usedBy: string, usedAt: string): void {
    this.ensureAvailable(code);
    this.#t.prepared('INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)').run(code, usedBy, usedAt);
  }

  forAccount(did: string, opts: { includeUsed: boolean }): InviteCodeInfo[] {
    const codes = this.#t
      .prepared<[string], InviteRow>('SELECT * FROM invite_code WHERE for_account = ? ORDER BY created_at, code')
      .all(did);
    return codes.map((c) => this.#info(c)).filter((c) => opts.includeUsed || c.available > 0);
  }

  /** Disables the given codes and every code given to the given accounts (admin.disableInviteCodes). */
  disable(args: { codes: string[]; accounts: string[] }): void {
    this.#t.db.transaction(() => {
      const byCode = this.#t.prepared('UPDATE invite_code SET disabled = 1 WHERE code = ?');
      for (const code of args.codes) byCode.run(code);
      const byAccount = this.#t.prepared('UPDATE invite_code SET disabled = 1 WHERE for_account = ?');
      for (const account of args.accounts) byAccount.run(account);
    })();
  }

  /**
   * Every invite code on the server, newest first (`recent`) or most used first (`usage`), in
   * pages; the cursor is the reference's `primary::code` keyset form.
   */
  list(opts: { sort: 'recent' | 'usage'; limit: number; cursor?: string }): {
    codes: InviteCodeInfo[];
    cursor?: string;
  } {
    const usage = opts.sort === 'usage';
    let after = '';
    const params: (string | number)[] = [];
    if (opts.cursor !== undefined) {
      const [primary, code] = opts.cursor.split('::');
      const n = Number(primary);
      if (!primary || code === undefined || !Number.isInteger(n)) throw InvalidRequest('Malformed cursor');
      after = usage
        ? 'WHERE (uses < ? OR (uses = ? AND code < ?))'
        : 'WHERE (created_ms < ? OR (created_ms = ? AND code < ?))';
      params.push(n, n, code);
    }
    const rows = this.#t
      .prepared<(string | number)[], InviteRow & { uses: number; created_ms: number }>(
        `SELECT * FROM (
           SELECT invite_code.*, (SELECT count(*) FROM invite_code_use u WHERE u.code = invite_code.code) AS uses,
                  CAST(round((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER) AS created_ms
           FROM invite_code)
         ${after}
         ORDER BY ${usage ? 'uses' : 'created_ms'} DESC, code DESC LIMIT ?`,
      )
      .all(...params, opts.limit);
    const last = rows.at(-1);
    return {
      codes: rows.map((row) => this.#info(row)),
      cursor: rows.length === opts.limit && last ? `${usage ? last.uses : last.created_ms}::${last.code}` : undefined,
    };
  }

  /** The code an account signed up with, with its details (getAccountInfo's invitedBy). */
  invitedBy(did: string): InviteCodeInfo | undefined {
    const row = this.#t
      .prepared<[string], InviteRow>(
        'SELECT invite_code.* FROM invite_code_use JOIN invite_code USING (code) WHERE used_by = ? LIMIT 1',
      )
      .get(did);
    return row ? this.#info(row) : undefined;
  }

  #info(c: InviteRow): InviteCodeInfo {
    const uses = this.#t
      .prepared<[string], { used_by: string; used_at: string }>(
        'SELECT used_by, used_at FROM invite_code_use WHERE code = ? ORDER BY used_at',
      )
      .all(c.code)
      .map((u) => ({ usedBy: u.used_by, usedAt: u.used_at }));
    return {
      code: c.code,
      available: Math.max(0, c.available_uses - uses.length),
      disabled: c.disabled === 1,
      forAccount: c.for_account,
      createdBy: c.created_by,
      createdAt: c.created_at,
      uses,
    };
  }

  /** Deletes the codes given to the account, with their uses (the account is being deleted). */
  deleteForAccount(did: string): void {
    this.#t
      .prepared('DELETE FROM invite_code_use WHERE code IN (SELECT code FROM invite_code WHERE for_account = ?)')
      .run(did);
    this.#t.prepared('DELETE FROM invite_code WHERE for_account = ?').run(did);
  }
}

/**
 * How many invite codes an account has earned and not yet been given, as the reference counts:
 * one per interval of its life after the epoch, minus the codes it got since the epoch, and no
 * more than five unused at a time. Codes the admin gave count for neither.
 */
export function earnedCodesToCreate(opts: {
  nowMs: number;
  accountCreatedMs: number;
  epochMs: number;
  intervalMs: number;
  codes: Pick<InviteCodeInfo, 'createdBy' | 'createdAt' | 'disabled' | 'available'>[];
}): number {
  const routine = opts.codes.filter((c) => c.createdBy !== 'admin');
  const unused = routine.filter((c) => !c.disabled && c.available > 0).length;
  const intervals = (ms: number) => Math.floor(ms / opts.intervalMs);
  const couldCreate =
    opts.accountCreatedMs >= opts.epochMs
      ? intervals(opts.nowMs - opts.accountCreatedMs)
      : intervals(opts.nowMs - opts.accountCreatedMs) - intervals(opts.epochMs - opts.accountCreatedMs);
  const sinceEpoch = routine.filter((c) => Date.parse(c.createdAt) > opts.epochMs).length;
  return Math.max(0, Math.min(5 - unused, couldCreate - sinceEpoch));
}
