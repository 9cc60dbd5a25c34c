import { AtprotoError } from '../errors.ts';

/**
 * Bad data-model input: non-canonical or malformed DAG-CBOR, malformed JSON form, or a value that
 * breaks the atproto data-model rules. `code` is 'InvalidCbor' for byte-level problems and
 * 'InvalidData' for value-level ones; the message names what was wrong and where.
 */
export class DataModelError extends AtprotoError {}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)}`;
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}
