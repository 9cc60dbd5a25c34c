/**
 * The atproto data model in memory. It is @atcute's shape, so values pass to @atcute/cbor and
 * JSON.stringify unchanged: CID links are `{ $link }` objects (CidLinkWrapper when decoded), byte
 * strings are `{ $bytes }` objects (BytesWrapper when decoded), integers are safe-integer numbers,
 * and there are no floats.
 */
import type { Bytes } from '@atcute/cbor';
import type { CidLink } from '@atcute/cid';

export type { Bytes, CidLink };

export type DataValue = null | boolean | number | string | CidLink | Bytes | DataValue[] | DataObject;

/** A map. Properties set to undefined are treated as absent (as JSON does). */
export interface DataObject {
  [key: string]: DataValue | undefined;
}

/** A blob reference as records carry it. */
export interface BlobRef {
  $type: 'blob';
  ref: CidLink;
  mimeType: string;
  size: number;
}
