/**
 * Unsigned LEB128 varints as used for CAR section lengths. Only the encoder and the size
 * function live here; the reader decodes inline because it must cope with varints split across
 * stream chunks and must reject non-minimal encodings with a positioned error.
 */

export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/** Writes `value` at `offset`; returns the offset after it. */
export function writeVarint(value: number, into: Uint8Array, offset: number): number {
  while (value >= 0x80) {
    into[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  into[offset++] = value;
  return offset;
}
