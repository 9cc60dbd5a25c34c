/** The atproto data model: canonical DAG-CBOR, the JSON form, validity rules, records and blob refs. */
export { type FoundBlobRef, findBlobRefs, findBlobRefsInCbor, makeBlobRef, readBlobRef } from './blob.ts';
export { checkCbor, decodeCbor, decodeCborPrefix, encodeCbor, MAX_DEPTH } from './cbor.ts';
export { DataModelError } from './error.ts';
export { dataToJson, type JsonValue, jsonToData, parseDataJson } from './json.ts';
export { cidForRecord, decodeRecord, encodeRecord, type RecordValue, recordBlock } from './record.ts';
export type { BlobRef, Bytes, CidLink, DataObject, DataValue } from './types.ts';
export {
  assertValidData,
  assertValidRecord,
  isBlobRef,
  isBytesValue,
  isCidLinkValue,
  isValidData,
} from './validate.ts';
