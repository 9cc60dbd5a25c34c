/**
 * Checking a method's params, input and output against its lexicon (the schemas of
 * `@atcute/atproto` and `@atcute/bluesky`). Validation is @atcute's; a failure is worded as the
 * reference's xrpc-server words it (its `@atproto/lex-schema` issues), so a client sees the same
 * text from either server:
 *
 *   Input:  `Expected string value type (got 5) at $.repo`, `Missing required key "record" at $`
 *   Params: `Invalid com.atproto.sync.listRepos params: integer too big (maximum 1000, got 5000)`
 */
import {
  type BaseSchema,
  type Issue,
  object,
  type ObjectSchema,
  type ObjectShape,
  procedure,
  safeParse,
  type XRPCLexBodyParam,
  type XRPCProcedureMetadata,
  type XRPCQueryMetadata,
} from '@atcute/lexicons/validations';
import { InvalidRequest } from './errors.ts';

export type LexMethod = XRPCQueryMetadata | XRPCProcedureMetadata;

type LexProcedure = XRPCProcedureMetadata<ObjectSchema | null, XRPCLexBodyParam<ObjectSchema>>;
type InputShape<S extends LexProcedure> = S['input']['schema']['shape'];

/**
 * `lexicon` with some properties of its input checked differently: for a field whose problems
 * the handler names more precisely than the schema can (a handle's syntax: InvalidHandle).
 */
export function withInputProperties<S extends LexProcedure, O extends ObjectShape>(
  lexicon: S,
  properties: O,
): XRPCProcedureMetadata<
  S['params'],
  XRPCLexBodyParam<ObjectSchema<Omit<InputShape<S>, keyof O> & O>>,
  S['output'],
  S['nsid']
> {
  const schema = object({ ...lexicon.input.schema.shape, ...properties } as Omit<InputShape<S>, keyof O> & O);
  return procedure(lexicon.nsid, { params: lexicon.params, input: { type: 'lex', schema }, output: lexicon.output });
}

/** A JSON body checked against `schema` (defaults applied), or a 400 InvalidRequest naming the field. */
export function validateInput<T>(schema: BaseSchema, value: unknown): T {
  const result = safeParse(schema, value);
  if (result.ok) return result.value as T;
  const issue = lengthBeforeFormat(schema, value, result.issues[0]!);
  throw InvalidRequest(`${issueMessage(issue, value)} at ${jsonPath(issuePath(issue))}`);
}

/** Query params checked against the method's params schema, or a 400 InvalidRequest naming the parameter. */
export function validateParams<T>(nsid: string, schema: ObjectSchema, search: URLSearchParams): T {
  const value = decodeQueryParams(schema, search);
  const result = safeParse(schema, value);
  if (result.ok) return result.value as T;
  throw InvalidRequest(
    `Invalid ${nsid} params: ${issueMessage(lengthBeforeFormat(schema, value, result.issues[0]!), value)}`,
  );
}

/** A handler's JSON output checked against the lexicon; a mismatch is our fault, so an Error, not an XrpcError. */
export function checkOutput(nsid: string, schema: BaseSchema, value: unknown): void {
  const result = safeParse(schema, value);
  if (result.ok) return;
  const issue = result.issues[0]!;
  throw new Error(
    `${nsid} output does not match its lexicon: ${issueMessage(issue, value)} at ${jsonPath(issuePath(issue))}`,
  );
}

/** Whether an object schema is satisfied by `{}` (it has no required property). */
export function acceptsEmptyObject(schema: BaseSchema): boolean {
  return schema.type === 'object' && safeParse(schema, {}).ok;
}

/**
 * A query string as the values its params schema expects, the way the reference decodes one:
 * an empty value is absent, integers and booleans are parsed when they can be (left as text
 * otherwise, so the check names the type), an array parameter collects its repeats and a
 * repeated single one becomes an array (which its check refuses).
 */
function decodeQueryParams(schema: ObjectSchema, search: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  const shape = schema.shape as Record<string, BaseSchema>;
  for (const [name, value] of search) {
    if (!value) continue;
    const declared = Object.hasOwn(shape, name) ? unwrap(shape[name]!) : undefined;
    const isArray = declared?.type === 'array';
    const scalar = isArray ? unwrap((declared as unknown as { item: BaseSchema }).item) : declared;
    const decoded = decodeScalar(scalar?.type, value);
    const current = out[name];
    if (current === undefined) out[name] = isArray ? [decoded] : decoded;
    else if (Array.isArray(current)) current.push(decoded);
    else out[name] = [current, decoded];
  }
  return out;
}

function unwrap(schema: BaseSchema): BaseSchema {
  let current = schema;
  while (current.type === 'optional' || current.type === 'nullable') {
    current = (current as unknown as { wrapped: BaseSchema }).wrapped;
  }
  return current;
}

function decodeScalar(type: string | undefined, value: string): unknown {
  if (type === 'integer') return /^-?\d+$/.test(value) ? Number(value) : value;
  if (type === 'boolean') return value === 'true' ? true : value === 'false' ? false : value;
  return value;
}

/**
 * The reference checks a string's length before its format, @atcute after: a string failing
 * both is reported as too long (or short), as the reference reports it.
 */
function lengthBeforeFormat(schema: BaseSchema, input: unknown, issue: Issue): Issue {
  if (issue.code !== 'invalid_string_format') return issue;
  const value = valueAt(input, issue.path);
  if (typeof value !== 'string') return issue;
  const constraints = (schemaAt(schema, issue.path) as { constraints?: unknown[] } | undefined)?.constraints ?? [];
  const size = utf8Length(value);
  for (const constraint of constraints as { type: string; minLength: number; maxLength: number }[]) {
    if (constraint.type === 'string_length' && (size < constraint.minLength || size > constraint.maxLength)) {
      const { minLength, maxLength } = constraint;
      return { code: 'invalid_string_length', path: issue.path, minLength, maxLength };
    }
  }
  return issue;
}

/** The schema that checks the value at `path`, through objects, optionals and arrays. */
function schemaAt(schema: BaseSchema, path: readonly (string | number)[]): BaseSchema | undefined {
  let current: BaseSchema | undefined = unwrap(schema);
  for (const key of path) {
    if (!current) return undefined;
    if (current.type === 'object' && typeof key === 'string') {
      current = (current as ObjectSchema).shape[key] as BaseSchema | undefined;
    } else if (current.type === 'array' && typeof key === 'number') {
      current = (current as unknown as { item: BaseSchema }).item;
    } else {
      return undefined;
    }
    current = current && unwrap(current);
  }
  return current;
}

// The reference's names for value types and string formats.
const TYPE_NAMES: Record<string, string> = { unknown: 'object', 'cid-link': 'cid' };
const FORMAT_NAMES: Record<string, string> = {
  'at-identifier': 'AT identifier',
  did: 'DID',
  nsid: 'NSID',
  cid: 'CID string',
  tid: 'TID string',
  'record-key': 'record key',
};

/**
 * Where the reference reports an issue: a missing key at the object that lacks it (a union
 * member without `$type` is a wrong type of that member), a closed union's unknown `$type` at
 * the `$type`.
 */
function issuePath(issue: Issue): readonly (string | number)[] {
  if (issue.code === 'missing_value') return issue.path.slice(0, -1);
  if (issue.code === 'invalid_variant') return [...issue.path, '$type'];
  return issue.path;
}

/** An issue in the reference's words, without its path. */
function issueMessage(issue: Issue, input: unknown): string {
  const path = issuePath(issue);
  const value = valueAt(input, path);
  switch (issue.code) {
    case 'missing_value': {
      const key = issue.path[issue.path.length - 1];
      if (key === '$type')
        return `Expected an object which includes the "$type" property value type (got ${show(value)})`;
      return `Missing required key "${String(key)}"`;
    }
    case 'invalid_type':
      return `Expected ${TYPE_NAMES[issue.expected] ?? issue.expected} value type (got ${show(value)})`;
    case 'invalid_literal':
      return `Expected ${oneOf(issue.expected.map(show))} (got ${show(value)})`;
    case 'invalid_variant':
      return `Expected ${oneOf(issue.expected.map(show))} (got ${show(value)})`;
    case 'invalid_string_format':
      return `Invalid ${FORMAT_NAMES[issue.expected] ?? issue.expected} (got ${show(value)})`;
    case 'invalid_integer_range':
      return bound('integer', issue.min, issue.max, value as number);
    case 'invalid_string_length':
      return bound('string', issue.minLength, issue.maxLength, utf8Length(value));
    case 'invalid_string_graphemes':
      return bound('grapheme', issue.minGraphemes, issue.maxGraphemes, graphemeCount(value));
    case 'invalid_array_length':
      return bound('array', issue.minLength, issue.maxLength, Array.isArray(value) ? value.length : 0);
    case 'invalid_bytes_size':
      return bound('bytes', issue.minSize, issue.maxSize, bytesSize(value));
    case 'invalid_blob_size':
      return `blob too big (maximum ${issue.maxSize}, got ${blobSize(value)})`;
    case 'invalid_blob_mime_type':
      return `Expected ${oneOf(issue.accept.map(show))} (got ${show(blobMimeType(value))})`;
  }
}

// An issue carries both bounds, not the one crossed: the value's size tells which.
function bound(type: string, min: number, max: number, actual: number): string {
  return actual > max
    ? `${type} too big (maximum ${max}, got ${actual})`
    : `${type} too small (minimum ${min}, got ${actual})`;
}

function utf8Length(value: unknown): number {
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : 0;
}

function graphemeCount(value: unknown): number {
  if (typeof value !== 'string') return 0;
  let count = 0;
  for (const _ of new Intl.Segmenter().segment(value)) count++;
  return count;
}

function bytesSize(value: unknown): number {
  const bytes = (value as { $bytes?: unknown } | undefined)?.$bytes;
  return typeof bytes === 'string' ? Math.floor((bytes.replace(/=+$/, '').length * 3) / 4) : 0;
}

function blobSize(value: unknown): unknown {
  return (value as { size?: unknown } | undefined)?.size;
}

function blobMimeType(value: unknown): unknown {
  return (value as { mimeType?: unknown } | undefined)?.mimeType;
}

function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let current = input;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

function jsonPath(path: readonly (string | number)[]): string {
  let out = '$';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[a-zA-Z_$][a-zA-Z0-9_]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function oneOf(items: string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `one of ${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

const PREVIEW_MAX_LENGTH = 256;

/** A value as the reference previews it in a message: strings quoted and cut, containers by their first two entries. */
function show(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value);
    case 'string':
      return JSON.stringify(value.length < PREVIEW_MAX_LENGTH ? value : `${value.slice(0, PREVIEW_MAX_LENGTH - 1)}…`);
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return firstTwo(value, show, '[', ']');
      return firstTwo(Object.keys(value), (key) => `${JSON.stringify(key)}: ...`, '{', '}');
    default:
      return typeof value;
  }
}

function firstTwo<T>(items: T[], format: (item: T) => string, open: string, close: string): string {
  return `${open}${items.slice(0, 2).map(format).join(', ')}${items.length > 2 ? ', ...' : ''}${close}`;
}
