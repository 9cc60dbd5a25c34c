/**
 * Query-string parameters of an XRPC call, read with the checks the lexicons imply. Every
 * failure is a 400 InvalidRequest whose message names the parameter, the way the reference
 * words it ("Params must have the property \"repo\""), so clients see familiar text.
 */
import { InvalidRequest } from './errors.ts';

export interface IntegerOptions {
  min?: number;
  max?: number;
}

export class Params {
  readonly search: URLSearchParams;
  constructor(search: URLSearchParams) {
    this.search = search;
  }

  has(name: string): boolean {
    return this.search.has(name);
  }

  /** The value of a single-valued parameter, or undefined when absent. Repeats are rejected. */
  string(name: string, opts: { maxLength?: number } = {}): string | undefined {
    const all = this.search.getAll(name);
    if (all.length === 0) return undefined;
    if (all.length > 1) throw InvalidRequest(`Parameter "${name}" must be given once`);
    const value = all[0]!;
    if (opts.maxLength !== undefined && value.length > opts.maxLength) {
      throw InvalidRequest(`${name} must not be longer than ${opts.maxLength} characters`);
    }
    return value;
  }

  requiredString(name: string, opts: { maxLength?: number } = {}): string {
    const value = this.string(name, opts);
    if (value === undefined || value === '') throw InvalidRequest(`Params must have the property "${name}"`);
    return value;
  }

  integer(name: string, opts: IntegerOptions = {}): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (!/^-?\d+$/.test(raw)) throw InvalidRequest(`${name} must be an integer`);
    const value = Number(raw);
    if (!Number.isSafeInteger(value)) throw InvalidRequest(`${name} must be an integer`);
    if (opts.min !== undefined && value < opts.min) throw InvalidRequest(`${name} can not be less than ${opts.min}`);
    if (opts.max !== undefined && value > opts.max) throw InvalidRequest(`${name} can not be greater than ${opts.max}`);
    return value;
  }

  boolean(name: string): boolean | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw InvalidRequest(`${name} must be a boolean`);
  }

  /** An array parameter (`?cids=a&cids=b`). */
  strings(name: string, opts: { maxItems?: number } = {}): string[] {
    const all = this.search.getAll(name);
    if (opts.maxItems !== undefined && all.length > opts.maxItems) {
      throw InvalidRequest(`${name} must not have more than ${opts.maxItems} elements`);
    }
    return all;
  }
}
