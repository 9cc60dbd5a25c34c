/**
 * Lexicon `datetime` strings (https://atproto.com/specs/lexicon#datetime): the intersection of
 * RFC 3339 and ISO 8601, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)`, uppercase `T`/`Z`,
 * timezone required, `-00:00` refused, at most 64 characters. Beyond the shape, the value must
 * be a real instant: month 1-12, a day that exists in that month, hour <= 23, minute and second
 * <= 59 (no leap seconds: JavaScript dates and the reference cannot represent them), and after
 * applying the offset the year must stay within 0000-9999.
 */
import { isAsciiDigit } from './chars.ts';
import { assertNoProblem } from './errors.ts';

export const DATETIME_MAX_LENGTH = 64;
const SHAPE = 'expected YYYY-MM-DDTHH:MM:SS[.fraction] followed by Z or +hh:mm/-hh:mm';

function digits(s: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const c = s.charCodeAt(i);
    if (!isAsciiDigit(c)) return -1;
    value = value * 10 + (c - 48);
  }
  return value;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Returns a problem description, or null when valid. With `wantTime`, returns epoch
 * milliseconds instead of null (building a Date is most of the cost, so validation alone skips
 * it unless the offset could push the instant out of years 0000-9999).
 */
function check(input: unknown, wantTime: boolean): number | string | null {
  if (typeof input !== 'string') return 'not a string';
  const n = input.length;
  if (n > DATETIME_MAX_LENGTH) return `longer than ${DATETIME_MAX_LENGTH} characters (${n})`;
  if (n < 20) return SHAPE;
  const year = digits(input, 0, 4);
  const month = digits(input, 5, 2);
  const day = digits(input, 8, 2);
  const hour = digits(input, 11, 2);
  const minute = digits(input, 14, 2);
  const second = digits(input, 17, 2);
  if (
    year < 0 ||
    month < 0 ||
    day < 0 ||
    hour < 0 ||
    minute < 0 ||
    second < 0 ||
    input.charCodeAt(4) !== 45 ||
    input.charCodeAt(7) !== 45 ||
    input.charCodeAt(10) !== 84 || // T
    input.charCodeAt(13) !== 58 ||
    input.charCodeAt(16) !== 58
  ) {
    return SHAPE;
  }
  let i = 19;
  let millis = 0;
  if (input.charCodeAt(i) === 46) {
    const start = ++i;
    while (i < n && isAsciiDigit(input.charCodeAt(i))) i++;
    if (i === start) return 'fractional seconds need at least one digit';
    // Sub-millisecond digits are kept in the string but cannot be represented by a Date.
    millis = Number(`${input.slice(start, Math.min(i, start + 3))}00`.slice(0, 3));
  }
  let offsetMinutes = 0;
  const tz = input.charCodeAt(i);
  if (tz === 90 && i + 1 === n) {
    // Z
  } else if ((tz === 43 || tz === 45) && i + 6 === n && input.charCodeAt(i + 3) === 58) {
    const oh = digits(input, i + 1, 2);
    const om = digits(input, i + 4, 2);
    if (oh < 0 || om < 0) return SHAPE;
    if (oh > 23 || om > 59) return `timezone offset ${input.slice(i)} is out of range`;
    if (tz === 45 && oh === 0 && om === 0) return 'use "Z" or "+00:00" for UTC, not "-00:00"';
    offsetMinutes = (tz === 43 ? 1 : -1) * (oh * 60 + om);
  } else {
    return tz === 122 ? 'timezone "Z" must be uppercase' : `${SHAPE} (a timezone is required)`;
  }
  if (month < 1 || month > 12) return `month ${input.slice(5, 7)} does not exist`;
  if (day < 1 || day > daysInMonth(year, month)) return `day ${input.slice(8, 10)} does not exist in that month`;
  if (hour > 23) return `hour ${input.slice(11, 13)} is out of range`;
  if (minute > 59) return `minute ${input.slice(14, 16)} is out of range`;
  if (second > 59) return `second ${input.slice(17, 19)} is out of range (leap seconds are not accepted)`;
  // An offset shifts the instant by less than a day, so only the first and last years can leave the range.
  if (!wantTime && year !== 0 && year !== 9999) return null;
  // Date.UTC maps years 0-99 to 1900-1999, so set the year separately.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute - offsetMinutes, second, millis);
  const utcYear = date.getUTCFullYear();
  if (utcYear < 0) return 'normalizes to a negative year';
  if (utcYear > 9999) return 'normalizes to a year after 9999';
  return date.getTime();
}

export function findDatetimeProblem(input: unknown): string | null {
  const result = check(input, false);
  return typeof result === 'string' ? result : null;
}

export function isValidDatetime(input: unknown): input is string {
  return typeof check(input, false) !== 'string';
}

export function assertValidDatetime(input: unknown): asserts input is string {
  assertNoProblem('datetime', input, findDatetimeProblem(input));
}

/** Validates and returns the instant (millisecond precision). */
export function parseDatetime(input: unknown): Date {
  const result = check(input, true);
  if (typeof result === 'string') assertNoProblem('datetime', input, result);
  return new Date(result as number);
}
