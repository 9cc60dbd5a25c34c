/**
 * CAR v1 archives: the streaming reader (verifies every block against its CID, memory bounded
 * by the largest block) and the streaming writer. See car/reader.ts and car/writer.ts.
 */
export { CarError, type CarErrorCode, type CarSection } from './car/errors.ts';
export {
  type CarBlock,
  type CarReader,
  type CarSource,
  DEFAULT_MAX_BLOCK_SIZE,
  DEFAULT_MAX_HEADER_SIZE,
  type ReadCarOptions,
  readCar,
  readCarBytes,
} from './car/reader.ts';
export {
  type CarBlockInput,
  DEFAULT_CHUNK_SIZE,
  encodeCarHeader,
  toReadableStream,
  type WriteCarOptions,
  writeCar,
  writeCarBytes,
} from './car/writer.ts';
