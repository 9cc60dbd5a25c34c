/**
 * The record lexicons this PDS knows: every record schema shipped by @atcute/atproto
 * (com.atproto.*) and @atcute/bluesky (app.bsky.*, chat.bsky.*), found by walking the packages'
 * exports once so a new schema version needs no code change here.
 */
import * as atprotoLexicons from '@atcute/atproto';
import * as blueskyLexicons from '@atcute/bluesky';
import type { BaseSchema } from '@atcute/lexicons/validations';

export interface RecordSchema extends BaseSchema {
  type: 'record';
  /** The record-key schema (`tid`, `nsid`, `literal:self`, `any`...). */
  key: BaseSchema;
  object: { shape: { $type: { expected: string } } };
}

function isRecordSchema(value: unknown): value is RecordSchema {
  const v = value as Partial<RecordSchema> | undefined;
  return !!v && v.type === 'record' && typeof v.object?.shape?.$type?.expected === 'string';
}

function collectRecordSchemas(): Map<string, RecordSchema> {
  const out = new Map<string, RecordSchema>();
  for (const pkg of [atprotoLexicons, blueskyLexicons] as Record<string, unknown>[]) {
    for (const namespace of Object.values(pkg)) {
      const main = (namespace as { mainSchema?: unknown } | null)?.mainSchema;
      if (isRecordSchema(main)) out.set(main.object.shape.$type.expected, main);
    }
  }
  return out;
}

let schemas: Map<string, RecordSchema> | undefined;

/** The schema of a known record collection, or undefined for collections we have no lexicon for. */
export function recordSchemaFor(collection: string): RecordSchema | undefined {
  schemas ??= collectRecordSchemas();
  return schemas.get(collection);
}
