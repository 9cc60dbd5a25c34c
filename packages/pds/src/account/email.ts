/**
 * Email address checks for sign-up: a plausible address (one @, a dotted domain, no spaces
 * or control characters) within the lengths SMTP allows. Whether it receives mail is what
 * confirmation is for.
 */
const EMAIL_RE =
  /^[^\s@<>()[\]\\,;:"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export function isValidEmail(email: string): boolean {
  if (email.length > 254) return false;
  const at = email.lastIndexOf('@');
  if (at < 1 || at > 64) return false;
  return EMAIL_RE.test(email);
}
