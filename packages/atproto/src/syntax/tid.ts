/**
 * TID syntax (https://atproto.com/specs/tid): exactly 13 characters of base32-sortable
 * (`234567abcdefghijklmnopqrstuvwxyz`), lowercase, with the top bit of the 64-bit value zero,
 * which limits the first character to `234567abcdefghij`. Generating and decoding TIDs is the
 * job of the TID module; this only answers "is this string one".
 */
import { describeCharAt } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const TID_LENGTH = 13;

function isBase32SortableChar(c: number): boolean {
  return (c >= 50 && c <= 55) || (c >= 97 && c <= 122); // 2-7, a-z
}

export function findTidProblem(input: unknown): string | null {
  if (typeof input !== 'string') return 'not a string';
  if (input.length !== TID_LENGTH) return `must be exactly ${TID_LENGTH} characters (got ${input.length})`;
  for (let i = 0; i < TID_LENGTH; i++) {
    if (!isBase32SortableChar(input.charCodeAt(i))) {
      return `${describeCharAt(input, i)} is not base32-sortable (234567a-z)`;
    }
  }
  const first = input.charCodeAt(0);
  if (first > 106) return 'first character must be one of 234567abcdefghij (the top bit must be zero)';
  return null;
}

export function isValidTid(input: unknown): input is string {
  return findTidProblem(input) === null;
}

export function assertValidTid(input: unknown): asserts input is string {
  assertNoProblem('TID', input, findTidProblem(input));
}
