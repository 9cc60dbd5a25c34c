/**
 * Preferences, kept per account in the account DB: their storage (`PreferenceStore`, any
 * namespace), and app.bsky's rules over it as the reference has them: every item needs a
 * `$type` in the app.bsky namespace; personal details (birth date) are visible and writable only
 * with full access; the declared-age item is computed on read from the birth date and never
 * stored.
 */
import type { AccessAuth } from '../auth/verifier.ts';
import { AuthScope } from '../auth/scopes.ts';
import { InvalidRequest } from '../xrpc/errors.ts';
import type { AccountManager } from './account-manager.ts';
import type { AccountTables } from './tables.ts';

export function matchesNamespace(namespace: string, type: string): boolean {
  return type === namespace || type.startsWith(`${namespace}.`);
}

export class PreferenceStore {
  readonly #t: AccountTables;

  constructor(tables: AccountTables) {
    this.#t = tables;
  }

  get(did: string, namespace: string): unknown[] {
    return this.#t
      .prepared<[string], { name: string; value_json: string }>(
        'SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY id',
      )
      .all(did)
      .filter((r) => matchesNamespace(namespace, r.name))
      .map((r) => JSON.parse(r.value_json) as unknown);
  }

  /** How many preferences the account has in every namespace (checkAccountStatus's privateStateValues). */
  count(did: string): number {
    return this.#t.prepared<[string], { n: number }>('SELECT count(*) AS n FROM account_pref WHERE did = ?').get(did)!
      .n;
  }

  /**
   * Replaces the account's preferences in `namespace` with `values` (each already checked to
   * have a `$type` in that namespace). Types in `keep` are left as they were: the caller may
   * not see or change them.
   */
  put(did: string, namespace: string, values: { $type: string }[], keep: (type: string) => boolean): void {
    const existing = this.#t
      .prepared<[string], { id: number; name: string }>('SELECT id, name FROM account_pref WHERE did = ?')
      .all(did);
    const remove = this.#t.prepared('DELETE FROM account_pref WHERE id = ?');
    const insert = this.#t.prepared('INSERT INTO account_pref (did, name, value_json) VALUES (?, ?, ?)');
    this.#t.db.transaction(() => {
      for (const row of existing) if (matchesNamespace(namespace, row.name) && !keep(row.name)) remove.run(row.id);
      for (const value of values) insert.run(did, value.$type, JSON.stringify(value));
    })();
  }
}

const NAMESPACE = 'app.bsky';
const PERSONAL_DETAILS = 'app.bsky.actor.defs#personalDetailsPref';
const DECLARED_AGE = 'app.bsky.actor.defs#declaredAgePref';
/** Generous bound so one account cannot fill the DB through preferences. */
const MAX_PREFERENCES = 1000;

function hasFullAccess(auth: AccessAuth): boolean {
  return auth.scope === AuthScope.Access;
}

function allowed(type: string, auth: AccessAuth): boolean {
  return type !== PERSONAL_DETAILS || hasFullAccess(auth);
}

export function preferencesFor(accounts: AccountManager, auth: AccessAuth): unknown[] {
  const prefs = accounts.getPreferences(auth.did, NAMESPACE) as ({ $type: string } & Record<string, unknown>)[];
  const details = prefs.find((p) => p.$type === PERSONAL_DETAILS);
  if (details && typeof details.birthDate === 'string') {
    const age = ageFrom(details.birthDate);
    if (age !== undefined) {
      prefs.push({ $type: DECLARED_AGE, isOverAge13: age >= 13, isOverAge16: age >= 16, isOverAge18: age >= 18 });
    }
  }
  return prefs.filter((p) => allowed(p.$type, auth));
}

export function storePreferences(accounts: AccountManager, auth: AccessAuth, items: unknown[]): void {
  if (items.length > MAX_PREFERENCES) throw InvalidRequest(`Too many preferences (max ${MAX_PREFERENCES})`);
  const checked: { $type: string }[] = [];
  items.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item))
      throw InvalidRequest(`Input/preferences/${i} must be an object`);
    if (typeof (item as { $type?: unknown }).$type !== 'string') throw InvalidRequest('Preference is missing a $type');
    checked.push(item as { $type: string });
  });
  if (!checked.every((p) => p.$type === NAMESPACE || p.$type.startsWith(`${NAMESPACE}.`))) {
    throw InvalidRequest(`Some preferences are not in the ${NAMESPACE} namespace`);
  }
  const forbidden = checked.filter((p) => !allowed(p.$type, auth));
  if (forbidden.length > 0) {
    throw InvalidRequest(`Do not have authorization to set preferences: ${forbidden.map((p) => p.$type).join(', ')}`);
  }
  accounts.putPreferences(
    auth.did,
    NAMESPACE,
    checked.filter((p) => p.$type !== DECLARED_AGE),
    // Leave in place what this session can neither see nor write.
    (type) => !allowed(type, auth),
  );
}

function ageFrom(birthDate: string): number | undefined {
  const born = new Date(birthDate);
  if (Number.isNaN(born.getTime())) return undefined;
  const today = new Date();
  let age = today.getUTCFullYear() - born.getUTCFullYear();
  const m = today.getUTCMonth() - born.getUTCMonth();
  if (m < 0 || (m === 0 && today.getUTCDate() < born.getUTCDate())) age--;
  return age;
}
