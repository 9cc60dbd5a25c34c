/**
 * String formats of the AT Protocol: one module per format, each with `findXProblem` (null or
 * a description), `isValidX` (type guard, no allocation when valid) and `assertValidX` (throws
 * SyntaxValidationError), plus parsers where the format has parts.
 */
export * from './at-identifier.ts';
export * from './at-uri.ts';
export * from './cid-string.ts';
export * from './datetime.ts';
export * from './did.ts';
export * from './errors.ts';
export * from './handle.ts';
export * from './language.ts';
export * from './nsid.ts';
export * from './record-key.ts';
export * from './repo-key.ts';
export * from './tid.ts';
export * from './uri.ts';
