/** ASCII character classes shared by the validators (charCode tests beat regexes on short strings). */

/** Names a character for a message; code points outside printable ASCII are shown as U+XXXX. */
export function describeCharAt(s: string, index: number): string {
  const cp = s.codePointAt(index) ?? 0;
  const shown =
    cp > 0x20 && cp < 0x7f
      ? JSON.stringify(String.fromCodePoint(cp))
      : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `character ${shown} at position ${index}`;
}

export function isAsciiLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

export function isAsciiDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function isAsciiAlnum(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
}
