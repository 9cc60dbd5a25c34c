/**
 * Every failure to read a CAR is a CarError that says what went wrong and where: the byte
 * offset in the stream and the index of the block being read (null while in the header), so a
 * broken multi-gigabyte export can be diagnosed from the message alone.
 */
import { AtprotoError } from '../errors.ts';

export type CarErrorCode =
  | 'CarTruncated' // the stream ended inside a section (see `section`)
  | 'CarVarintNotMinimal' // a length varint used more bytes than needed
  | 'CarVarintTooLong' // a length varint did not end within the allowed bytes
  | 'CarBadHeader' // header is not a DAG-CBOR { version: 1, roots: [CID...] }
  | 'CarHeaderTooLarge'
  | 'CarBadSection' // a block section too short to hold a CID
  | 'CarBadCid' // not a CIDv1 with SHA-256 and the DAG-CBOR or raw codec
  | 'CarBlockTooLarge'
  | 'CarHashMismatch' // the block's bytes do not hash to its CID
  | 'CarBadSource'; // the source yielded something other than bytes

/** Which part of the stream was being read. */
export type CarSection = 'header length' | 'header' | 'block length' | 'block CID' | 'block data';

export class CarError extends AtprotoError {
  declare readonly code: CarErrorCode;
  /** Byte offset (from the start of the stream) where the problem was found. */
  readonly offset: number;
  /** Index of the block being read, counting from 0; null in the header. */
  readonly blockIndex: number | null;
  readonly section: CarSection;
  constructor(
    code: CarErrorCode,
    problem: string,
    where: { offset: number; blockIndex: number | null; section: CarSection },
    options?: ErrorOptions,
  ) {
    const place = where.blockIndex === null ? 'header' : `block ${where.blockIndex}`;
    super(code, `CAR ${problem} (${where.section}, ${place}, at byte offset ${where.offset})`, options);
    this.offset = where.offset;
    this.blockIndex = where.blockIndex;
    this.section = where.section;
  }
}
