/**
 * Lexicon `language` strings: BCP 47 language tags (RFC 5646), checked strictly the way the
 * atproto interop suite expects:
 * - the grammar of RFC 5646 section 2.1 (language, extlang, script, region, variants,
 *   extensions, private use, and the grandfathered tags);
 * - the primary language subtag is 2-3 lowercase letters (`JA` and four-letter `jaja` are
 *   refused; 5-8 letter subtags are only reserved for future registration);
 * - no variant and no extension singleton appears twice (section 2.2.9 / 4.1), compared
 *   case-insensitively.
 * Subtags are not checked against the IANA registry.
 *
 * `isWellFormedLanguage` is the lenient variant (grammar only, any-case primary subtag of 2-8
 * letters, repeats allowed), which is what the reference PDS applies to incoming records. Use
 * it where refusing a tag other servers accept would break interop (stored or relayed records);
 * use the strict one for values Portage produces.
 */
import { isAsciiAlnum, isAsciiDigit, isAsciiLetter } from './chars.ts';
import { assertNoProblem } from './errors.ts';

const GRANDFATHERED = new Set([
  'en-GB-oed',
  'i-ami',
  'i-bnn',
  'i-default',
  'i-enochian',
  'i-hak',
  'i-klingon',
  'i-lux',
  'i-mingo',
  'i-navajo',
  'i-pwn',
  'i-tao',
  'i-tay',
  'i-tsu',
  'sgn-BE-FR',
  'sgn-BE-NL',
  'sgn-CH-DE',
  'art-lojban',
  'cel-gaulish',
  'no-bok',
  'no-nyn',
  'zh-guoyu',
  'zh-hakka',
  'zh-min',
  'zh-min-nan',
  'zh-xiang',
]);

function every(s: string, test: (c: number) => boolean): boolean {
  for (let i = 0; i < s.length; i++) if (!test(s.charCodeAt(i))) return false;
  return true;
}

const isLetters = (s: string, min: number, max: number) =>
  s.length >= min && s.length <= max && every(s, isAsciiLetter);
const isAlnums = (s: string, min: number, max: number) => s.length >= min && s.length <= max && every(s, isAsciiAlnum);
const isLowercase = (c: number) => c >= 97 && c <= 122;

/** `x-...` private use: one or more subtags of 1-8 letters/digits. Returns a problem or null. */
function checkPrivateUse(subtags: string[], from: number): string | null {
  if (from >= subtags.length) return 'private-use "x" needs at least one subtag after it';
  for (let i = from; i < subtags.length; i++) {
    if (!isAlnums(subtags[i]!, 1, 8)) return `private-use subtag "${subtags[i]}" must be 1-8 letters or digits`;
  }
  return null;
}

export function findLanguageProblem(input: unknown, strictness: 'strict' | 'lenient' = 'strict'): string | null {
  const strict = strictness === 'strict';
  if (typeof input !== 'string') return 'not a string';
  if (input.length === 0) return 'empty';
  if (GRANDFATHERED.has(input)) return null;
  const subtags = input.split('-');
  for (const subtag of subtags) if (subtag.length === 0) return 'empty subtag (stray "-")';
  const primary = subtags[0]!;
  if (primary === 'x' || primary === 'X') return checkPrivateUse(subtags, 1);
  if (strict && (primary.length < 2 || primary.length > 3 || !every(primary, isLowercase))) {
    return 'primary language subtag must be 2 or 3 lowercase letters';
  }
  if (!strict && !isLetters(primary, 2, 8)) return 'primary language subtag must be 2-8 letters';
  let i = 1;
  // extlang: up to three 3-letter subtags (only 3-letter alphabetic subtags can be extlang here).
  const extlangAllowed = primary.length <= 3;
  for (let count = 0; extlangAllowed && count < 3 && i < subtags.length && isLetters(subtags[i]!, 3, 3); count++) i++;
  if (i < subtags.length && isLetters(subtags[i]!, 4, 4)) i++; // script
  if (i < subtags.length) {
    const s = subtags[i]!;
    if (isLetters(s, 2, 2) || (s.length === 3 && every(s, isAsciiDigit))) i++; // region
  }
  const variants = new Set<string>();
  while (i < subtags.length) {
    const s = subtags[i]!;
    const isVariant = isAlnums(s, 5, 8) || (s.length === 4 && isAsciiDigit(s.charCodeAt(0)) && isAlnums(s, 4, 4));
    if (!isVariant) break;
    const key = s.toLowerCase();
    if (strict && variants.has(key)) return `variant subtag "${s}" is repeated`;
    variants.add(key);
    i++;
  }
  const singletons = new Set<string>();
  while (i < subtags.length) {
    const s = subtags[i]!;
    if (s.length !== 1) break;
    const key = s.toLowerCase();
    if (key === 'x') return checkPrivateUse(subtags, i + 1);
    if (!isAsciiAlnum(s.charCodeAt(0))) break;
    if (strict && singletons.has(key)) return `extension singleton "${s}" is repeated`;
    singletons.add(key);
    const start = ++i;
    while (i < subtags.length && isAlnums(subtags[i]!, 2, 8)) i++;
    if (i === start) return `extension "${s}" needs at least one subtag of 2-8 letters or digits`;
  }
  if (i < subtags.length) return `subtag "${subtags[i]}" is not valid at position ${i + 1}`;
  return null;
}

export function isValidLanguage(input: unknown): input is string {
  return findLanguageProblem(input) === null;
}

export function assertValidLanguage(input: unknown): asserts input is string {
  assertNoProblem('language tag', input, findLanguageProblem(input));
}

/** Grammar-only check (see the module comment): accepts what the reference accepts on input. */
export function isWellFormedLanguage(input: unknown): input is string {
  return findLanguageProblem(input, 'lenient') === null;
}
