/**
 * Reading fields of a parsed JSON request body. Each check fails with a 400 InvalidRequest
 * whose message names the field ("Input must have the property \"handle\"",
 * "Input/email must be a string"), as the reference's lexicon validation does.
 */
import { InvalidRequest } from './errors.ts';

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The body as an object; procedures that take JSON input call this first. */
export function inputObject(input: unknown): JsonObject {
  if (input === undefined) throw InvalidRequest('A request body is expected but none was provided');
  if (!isJsonObject(input)) throw InvalidRequest('Input must be an object');
  return input;
}

export function optionalString(obj: JsonObject, key: string, opts: { maxLength?: number } = {}): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw InvalidRequest(`Input/${key} must be a string`);
  if (opts.maxLength !== undefined && value.length > opts.maxLength) {
    throw InvalidRequest(`Input/${key} must not be longer than ${opts.maxLength} characters`);
  }
  return value;
}

export function requiredString(obj: JsonObject, key: string, opts: { maxLength?: number } = {}): string {
  const value = optionalString(obj, key, opts);
  if (value === undefined) throw InvalidRequest(`Input must have the property "${key}"`);
  return value;
}

export function optionalBoolean(obj: JsonObject, key: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw InvalidRequest(`Input/${key} must be a boolean`);
  return value;
}

export function optionalInteger(
  obj: JsonObject,
  key: string,
  opts: { min?: number; max?: number } = {},
): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw InvalidRequest(`Input/${key} must be an integer`);
  if (opts.min !== undefined && value < opts.min) throw InvalidRequest(`Input/${key} can not be less than ${opts.min}`);
  if (opts.max !== undefined && value > opts.max) {
    throw InvalidRequest(`Input/${key} can not be greater than ${opts.max}`);
  }
  return value;
}

export function requiredInteger(obj: JsonObject, key: string, opts: { min?: number; max?: number } = {}): number {
  const value = optionalInteger(obj, key, opts);
  if (value === undefined) throw InvalidRequest(`Input must have the property "${key}"`);
  return value;
}

export function optionalArray(obj: JsonObject, key: string, opts: { maxItems?: number } = {}): unknown[] | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw InvalidRequest(`Input/${key} must be an array`);
  if (opts.maxItems !== undefined && value.length > opts.maxItems) {
    throw InvalidRequest(`Input/${key} must not have more than ${opts.maxItems} elements`);
  }
  return value;
}

export function requiredArray(obj: JsonObject, key: string, opts: { maxItems?: number } = {}): unknown[] {
  const value = optionalArray(obj, key, opts);
  if (value === undefined) throw InvalidRequest(`Input must have the property "${key}"`);
  return value;
}

export function optionalStringArray(
  obj: JsonObject,
  key: string,
  opts: { maxItems?: number } = {},
): string[] | undefined {
  const value = optionalArray(obj, key, opts);
  if (value === undefined) return undefined;
  value.forEach((item, i) => {
    if (typeof item !== 'string') throw InvalidRequest(`Input/${key}/${i} must be a string`);
  });
  return value as string[];
}

export function optionalObject(obj: JsonObject, key: string): JsonObject | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw InvalidRequest(`Input/${key} must be an object`);
  return value;
}

export function requiredObject(obj: JsonObject, key: string): JsonObject {
  const value = optionalObject(obj, key);
  if (value === undefined) throw InvalidRequest(`Input must have the property "${key}"`);
  return value;
}
