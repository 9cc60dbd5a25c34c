/**
 * Session token scopes, with the reference's names so tokens and clients interoperate.
 * An access token's scope says what its session may do: full access for a password login,
 * the two app-password levels, or the narrow set left to a taken-down account.
 */
export const AuthScope = {
  Access: 'com.atproto.access',
  Refresh: 'com.atproto.refresh',
  AppPass: 'com.atproto.appPass',
  AppPassPrivileged: 'com.atproto.appPassPrivileged',
  Takendown: 'com.atproto.takendown',
} as const;

export type AccessScope =
  typeof AuthScope.Access | typeof AuthScope.AppPass | typeof AuthScope.AppPassPrivileged | typeof AuthScope.Takendown;

/** Scopes any ordinary authenticated call accepts (no taken-down sessions). */
export const STANDARD_SCOPES: readonly AccessScope[] = [
  AuthScope.Access,
  AuthScope.AppPassPrivileged,
  AuthScope.AppPass,
];

/** Calls that need the account password itself (never an app password). */
export const FULL_ACCESS_SCOPES: readonly AccessScope[] = [AuthScope.Access];

export function isAccessScope(value: unknown): value is AccessScope {
  return (
    value === AuthScope.Access ||
    value === AuthScope.AppPass ||
    value === AuthScope.AppPassPrivileged ||
    value === AuthScope.Takendown
  );
}
