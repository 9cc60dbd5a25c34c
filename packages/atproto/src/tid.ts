/**
 * TIDs (timestamp identifiers, https://atproto.com/specs/tid): a 64-bit integer written as 13
 * characters of "base32-sortable", so that string order is time order. The top bit is 0, then 53 bits
 * of microseconds since the Unix epoch, then a 10-bit clock id that keeps two writers apart when
 * they hit the same microsecond. Repositories use TIDs as revisions (each commit's rev must be
 * greater than the previous one) and as record keys.
 */
import { AtprotoError } from './errors.ts';

export class TidError extends AtprotoError {}

export interface ParsedTid {
  /** Microseconds since the Unix epoch. */
  timestamp: number;
  /** 0..1023 */
  clockId: number;
}

const ALPHABET = '234567abcdefghijklmnopqrstuvwxyz';
const VALUES: Record<string, number> = Object.fromEntries([...ALPHABET].map((c, i) => [c, i]));
// The first character carries the (always zero) top bit and the next four bits, so it is one of the
// first 16 symbols.
const TID_PATTERN = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const MAX_TIMESTAMP = 2 ** 53 - 1;
const MAX_CLOCK_ID = 1023;

/** True when `text` is a syntactically valid TID. */
export function isValidTid(text: string): boolean {
  return typeof text === 'string' && text.length === 13 && TID_PATTERN.test(text);
}

/** Throws TidError naming the input when it is not a valid TID. */
export function assertValidTid(text: string): void {
  if (!isValidTid(text)) {
    throw new TidError(
      'InvalidTid',
      `not a valid TID (13 base32-sortable characters, first one of 234567abcdefghij): ${describe(text)}`,
    );
  }
}

/**
 * Splits a TID into its microsecond timestamp and clock id. The syntax admits a 54-bit timestamp
 * (first character up to 'j'), but the spec's timestamp is 53 bits (first character up to 'b', a
 * date some 285,000 years away); beyond that the value would not be exact in a number, so it is
 * refused here rather than silently rounded.
 */
export function parseTid(text: string): ParsedTid {
  assertValidTid(text);
  if (VALUES[text[0]!]! > 7) {
    throw new TidError('InvalidTid', `TID timestamp is beyond 2^53 microseconds: ${describe(text)}`);
  }
  // The first 11 characters hold the timestamp, exact in a double below 2^53. The last 2 characters
  // are exactly the 10-bit clock id.
  let timestamp = 0;
  for (let i = 0; i < 11; i++) timestamp = timestamp * 32 + VALUES[text[i]!]!;
  const clockId = VALUES[text[11]!]! * 32 + VALUES[text[12]!]!;
  return { timestamp, clockId };
}

/** Writes a TID from a microsecond timestamp and a clock id (0..1023). */
export function formatTid(timestamp: number, clockId: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp > MAX_TIMESTAMP) {
    throw new TidError('InvalidTid', `TID timestamp must be an integer in 0..2^53-1 microseconds, got ${timestamp}`);
  }
  if (!Number.isInteger(clockId) || clockId < 0 || clockId > MAX_CLOCK_ID) {
    throw new TidError('InvalidTid', `TID clock id must be an integer in 0..1023, got ${clockId}`);
  }
  let out = '';
  let rest = timestamp;
  for (let i = 0; i < 11; i++) {
    out = ALPHABET[rest % 32]! + out;
    rest = Math.floor(rest / 32);
  }
  return out + ALPHABET[clockId >> 5]! + ALPHABET[clockId & 31]!;
}

/** Orders two TIDs by time (then clock id): negative, zero or positive. String order is TID order. */
export function compareTid(a: string, b: string): number {
  assertValidTid(a);
  assertValidTid(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The moment a TID was minted, as a Date (millisecond precision). */
export function tidToDate(text: string): Date {
  return new Date(Math.floor(parseTid(text).timestamp / 1000));
}

export interface TidGeneratorOptions {
  /** Fixed clock id; random by default so that two processes rarely collide. */
  clockId?: number;
  /** Current time in microseconds; defaults to the wall clock. Injectable for tests. */
  nowMicros?: () => number;
}

/**
 * Mints TIDs that strictly increase for the life of the generator, even if the wall clock steps
 * backwards (NTP adjustments, VM migrations): the timestamp never goes below the last one issued
 * plus one microsecond. The clock id stays fixed, so increasing timestamps alone guarantee increasing,
 * never-repeating TIDs.
 */
export class TidGenerator {
  readonly clockId: number;
  readonly #now: () => number;
  #last = -1;

  constructor(options: TidGeneratorOptions = {}) {
    const clockId = options.clockId ?? randomClockId();
    if (!Number.isInteger(clockId) || clockId < 0 || clockId > MAX_CLOCK_ID) {
      throw new TidError('InvalidTid', `TID clock id must be an integer in 0..1023, got ${clockId}`);
    }
    this.clockId = clockId;
    this.#now = options.nowMicros ?? (() => Date.now() * 1000);
  }

  /**
   * The next TID; when `prev` is given (e.g. a repository's current rev, possibly minted by another
   * process or host with a clock ahead of ours) the result is also strictly greater than it.
   */
  next(prev?: string): string {
    let timestamp = Math.max(Math.floor(this.#now()), this.#last + 1);
    if (prev !== undefined) {
      const previous = parseTid(prev);
      // Same microsecond with a larger clock id would sort first too; move past it.
      const floor = previous.clockId < this.clockId ? previous.timestamp : previous.timestamp + 1;
      timestamp = Math.max(timestamp, floor);
    }
    if (timestamp > MAX_TIMESTAMP) throw new TidError('InvalidTid', 'TID timestamp space exhausted');
    this.#last = timestamp;
    return formatTid(timestamp, this.clockId);
  }
}

function randomClockId(): number {
  const bytes = new Uint8Array(2);
  crypto.getRandomValues(bytes);
  return ((bytes[0]! << 8) | bytes[1]!) & MAX_CLOCK_ID;
}

const processGenerator = new TidGenerator();

/** Next TID from the process-wide generator; strictly greater than every earlier one and than `prev`. */
export function nextTid(prev?: string): string {
  return processGenerator.next(prev);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 100)) : typeof value;
}
