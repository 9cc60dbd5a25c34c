/**
 * The backup as one download: a tar of the folder `portage backup` writes (repo.car, blobs/<cid>,
 * blob-types.jsonl, preferences.json, manifest.json), so the recovery tools read it once it is
 * unpacked. The archive is a Blob made of the stored files' own Blobs, which the browser reads
 * from storage while saving: an account's media never has to fit in memory.
 */

const BLOCK = 512;
const encoder = new TextEncoder();

export interface ArchiveEntry {
  /** Path inside the archive, folders separated by "/". */
  path: string;
  body: Blob;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A ustar header; paths longer than 100 bytes go into the 155-byte prefix field. */
function header(path: string, size: number, mtime: number): Uint8Array {
  let name = path;
  let prefix = '';
  if (encoder.encode(path).length > 100) {
    const cut = path.lastIndexOf('/');
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  const h = new Uint8Array(BLOCK);
  const put = (text: string, at: number) => h.set(encoder.encode(text), at);
  put(name, 0);
  put('0000600\0', 100);
  put('0000000\0', 108);
  put('0000000\0', 116);
  put(octal(size, 12), 124);
  put(octal(mtime, 12), 136);
  put('        ', 148);
  put('0', 156);
  put('ustar\0', 257);
  put('00', 263);
  put(prefix, 345);
  const sum = h.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

export function tarArchive(entries: ArchiveEntry[], mtime = Math.floor(Date.now() / 1000)): Blob {
  const parts: BlobPart[] = [];
  for (const entry of entries) {
    parts.push(header(entry.path, entry.body.size, mtime) as Uint8Array<ArrayBuffer>, entry.body);
    const pad = (BLOCK - (entry.body.size % BLOCK)) % BLOCK;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  return new Blob(parts, { type: 'application/x-tar' });
}
