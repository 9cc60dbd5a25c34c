import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cborDecode as referenceDecode, cborEncode as referenceEncode, parseCidFromBytes } from '@atproto/common';
import { BytesWrapper, encode as atcuteEncode } from '@atcute/cbor';
import { CidLinkWrapper } from '@atcute/cid';
import { fromBase64 } from '@atcute/multibase';
import { cidForCbor, cidForRaw, formatCid } from '../src/cid.ts';
import {
  assertValidData,
  checkCbor,
  cidForRecord,
  dataToJson,
  DataModelError,
  decodeCbor,
  decodeCborPrefix,
  decodeRecord,
  encodeCbor,
  encodeRecord,
  findBlobRefs,
  findBlobRefsInCbor,
  isBlobRef,
  isValidData,
  jsonToData,
  makeBlobRef,
  parseDataJson,
  readBlobRef,
  recordBlock,
  type DataValue,
} from '../src/data/index.ts';

const fixtures = join(import.meta.dirname, '../../../test/fixtures/interop/data-model');
const readJson = (name: string) => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));
const hex = (text: string) => Uint8Array.from(text.match(/../g)!.map((b) => parseInt(b, 16)));
const b64 = (text: string) => fromBase64(text.replace(/=+$/, ''));

test('data-model-fixtures.json: JSON -> CBOR -> JSON round-trips byte for byte with the same CID', (t) => {
  const vectors: { json: unknown; cbor_base64: string; cid: string }[] = readJson('data-model-fixtures.json');
  for (const v of vectors) {
    const expected = b64(v.cbor_base64);
    const value = jsonToData(v.json);
    const bytes = encodeCbor(value);
    assert.deepEqual(bytes, expected, 'json -> cbor');
    assert.equal(formatCid(cidForCbor(bytes)), v.cid, 'cid');
    const decoded = decodeCbor(expected);
    assert.deepEqual(dataToJson(decoded), v.json, 'cbor -> json');
    assert.deepEqual(JSON.parse(JSON.stringify(decoded)), v.json, 'JSON.stringify of decoded value');
    assert.deepEqual(encodeCbor(decoded), expected, 'cbor -> value -> cbor');
  }
  assert.equal(vectors.length, 3);
  t.diagnostic(`data-model round-trip vectors run: ${vectors.length}`);
});

test('data-model-valid.json: every value accepted', (t) => {
  const vectors: { note: string; json: unknown }[] = readJson('data-model-valid.json');
  for (const v of vectors) {
    const value = jsonToData(v.json);
    assertValidData(value);
    // And it survives CBOR.
    assert.deepEqual(dataToJson(decodeCbor(encodeCbor(value))), v.json, v.note);
  }
  assert.ok(vectors.length >= 5);
  t.diagnostic(`data-model valid vectors run: ${vectors.length}`);
});

test('data-model-invalid.json: every value rejected with a DataModelError giving the reason', (t) => {
  const vectors: { note: string; json: unknown }[] = readJson('data-model-invalid.json');
  const reasons: string[] = [];
  for (const v of vectors) {
    assert.throws(
      () => jsonToData(v.json),
      (e) => {
        if (!(e instanceof DataModelError) || !/^at \$/.test(e.message)) return false;
        reasons.push(`${v.note}: ${e.message}`);
        return true;
      },
      v.note,
    );
  }
  assert.ok(vectors.length >= 12);
  t.diagnostic(`data-model invalid vectors run: ${vectors.length}`);
  for (const reason of reasons) t.diagnostic(`  ${reason}`);
});

test('the in-memory validators reject the same invalid values', () => {
  const invalid: [unknown, RegExp][] = [
    ['blah', /top-level/],
    [{ a: 1.5 }, /floats/],
    [{ r: { $type: null } }, /\$type/],
    [{ r: { $type: '' } }, /\$type/],
    [{ b: { $type: 'blob', mimeType: 'image/png', size: 3 } }, /ref/],
    [{ b: { $type: 'blob', ref: new CidLinkWrapper(cidForRaw(new Uint8Array(1)).bytes), size: 3 } }, /mimeType/],
    [{ l: { $link: 'bafy', other: 1 } }, /\$link/],
    [{ l: { $bytes: 12 } }, /\$bytes/],
    [{ a: [1, undefined] }, /undefined/],
    [{ d: new Date() }, /plain object/],
  ];
  for (const [value, pattern] of invalid) {
    assert.equal(isValidData(value), false);
    assert.throws(
      () => assertValidData(value),
      (e) => e instanceof DataModelError && pattern.test(e.message),
    );
  }
});

// Each kind of non-canonical or forbidden encoding, as raw bytes.
const nonCanonical: [string, string, RegExp][] = [
  ['map keys not sorted length-first', 'a2626262016161' + '02', /canonical order/],
  ['map keys of equal length not bytewise sorted', 'a2616202616101', /canonical order/],
  ['duplicate map key', 'a2616101616102', /duplicate map key/],
  ['non-minimal integer (1-byte form for 10)', '180a', /non-minimal/],
  ['non-minimal integer (2-byte form for 255)', '1900ff', /non-minimal/],
  ['non-minimal integer (4-byte form)', '1a0000ffff', /non-minimal/],
  ['non-minimal integer (8-byte form)', '1b00000000ffffffff', /non-minimal/],
  ['non-minimal negative integer', '3817', /non-minimal/],
  ['non-minimal string length', '7801' + '61', /non-minimal/],
  ['non-minimal map length', 'b80100', /non-minimal/],
  ['indefinite-length array', '9f01ff', /indefinite/],
  ['indefinite-length map', 'bf616101ff', /indefinite/],
  ['indefinite-length string', '7f616161ff', /indefinite/],
  ['float64', 'fb3ff8000000000000', /floating-point/],
  ['integral float64 (1.0)', 'fb3ff0000000000000', /floating-point/],
  ['float32', 'fa3fc00000', /floating-point/],
  ['float16', 'f93e00', /floating-point/],
  ['undefined', 'f7', /undefined/],
  ['simple value', 'f0', /simple value/],
  ['tag other than 42', 'c11a5f5e1000', /tag 1 is not allowed/],
  ['tag 42 around a non-byte string', 'd82a6161', /byte string/],
  ['CID link without the 0x00 prefix', 'd82a5824' + '01711220' + '00'.repeat(32), /0x00/],
  ['CIDv0-style link', 'd82a5823' + '00' + '1220' + '00'.repeat(32), /CID link/],
  ['CID link of version 2', 'd82a5825' + '00' + '02711220' + '00'.repeat(32), /CID link: CID version 2/],
  ['CID link with an unknown codec', 'd82a5825' + '00' + '01701220' + '00'.repeat(32), /CID link: CID codec 0x70/],
  ['CID link hashed with SHA-512', 'd82a5825' + '00' + '01711320' + '00'.repeat(32), /CID link: .*SHA-256/],
  ['trailing bytes', '0102', /trailing/],
  ['truncated input', '6461', /end of input/],
  ['empty input', '', /empty/],
  ['non-string map key', 'a10101', /text strings/],
  ['invalid UTF-8', '62c328', /UTF-8/],
  ['integer beyond 2^53', '1b0020000000000000', /safe integer/],
  ['array length larger than input', '9a00010000', /end of input/],
];

test('non-canonical and forbidden DAG-CBOR encodings are each rejected with a named reason', (t) => {
  for (const [name, bytes, pattern] of nonCanonical) {
    const input = bytes === '' ? new Uint8Array(0) : hex(bytes);
    let decodeError: unknown;
    assert.throws(
      () => decodeCbor(input),
      (e) => {
        decodeError = e;
        return e instanceof DataModelError && e.code === 'InvalidCbor' && pattern.test(e.message);
      },
      name,
    );
    // The check that builds nothing refuses it with the very same error.
    assert.throws(
      () => checkCbor(input),
      (e) => e instanceof DataModelError && e.message === (decodeError as Error).message,
      `${name} (checkCbor)`,
    );
  }
  t.diagnostic(`non-canonical CBOR kinds rejected: ${nonCanonical.length}`);
});

/** decodeCbor's verdict on `bytes`: the value, or the error message. */
function decodeOutcome(bytes: Uint8Array): { value?: DataValue; error?: string } {
  try {
    return { value: decodeCbor(bytes) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

test('checkCbor accepts and refuses exactly what decodeCbor does, on valid values and every corruption of them', (t) => {
  let compared = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const valid = encodeCbor({ root: randomValue(seed), ké: 'é', $type: 'x' });
    assert.equal(checkCbor(valid), false);
    // Every truncation and every single-byte change: same verdict, same message.
    const variants: Uint8Array[] = [];
    for (let n = 0; n < valid.length; n++) variants.push(valid.subarray(0, n));
    for (let i = 0; i < valid.length; i++) {
      for (const b of [
        0x00, 0x17, 0x18, 0x3f, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc3, 0xd8, 0xf6, 0xfb, 0xff,
      ]) {
        if (valid[i] === b) continue;
        const variant = valid.slice();
        variant[i] = b;
        variants.push(variant);
      }
    }
    for (const variant of variants) {
      const decoded = decodeOutcome(variant);
      let checked: string | undefined;
      try {
        checkCbor(variant);
      } catch (err) {
        checked = (err as Error).message;
      }
      assert.equal(checked, decoded.error, `seed ${seed}: ${Buffer.from(variant).toString('hex')}`);
      compared++;
    }
  }
  t.diagnostic(`encodings compared between checkCbor and decodeCbor: ${compared}`);
});

test('checkCbor reports whether a watched map key occurs at any depth', () => {
  const watch = new TextEncoder().encode('mimeType');
  assert.equal(checkCbor(encodeCbor({ a: [{ b: { mimeType: 1 } }] }), watch), true);
  assert.equal(checkCbor(encodeCbor({ mimeType: 1 }), watch), true);
  // As a value, or as part of a longer key, it does not count.
  assert.equal(checkCbor(encodeCbor({ a: 'mimeType', mimeTypes: 1, mimeTyp: 2 }), watch), false);
  assert.equal(checkCbor(encodeCbor(['mimeType']), watch), false);
});

test('reserved $link / $bytes map keys are rejected on decode and encode', () => {
  // {"$link": "x"} and {"$bytes": 1} as real CBOR maps.
  assert.throws(() => decodeCbor(hex('a165246c696e6b6178')), /reserved/);
  assert.throws(() => decodeCbor(hex('a1662462797465730a')), /reserved/);
  assert.throws(() => checkCbor(hex('a165246c696e6b6178')), /reserved/);
  assert.throws(() => checkCbor(hex('a1662462797465730a')), /reserved/);
  assert.throws(() => encodeCbor({ $link: 'x', other: 1 }), DataModelError);
});

test('canonical forms at the boundaries decode', () => {
  assert.equal(decodeCbor(hex('17')), 23);
  assert.equal(decodeCbor(hex('1818')), 24);
  assert.equal(decodeCbor(hex('1900ff'.replace('00ff', '0100'))), 256);
  assert.equal(decodeCbor(hex('1b001fffffffffffff')), Number.MAX_SAFE_INTEGER);
  assert.equal(decodeCbor(hex('3b001ffffffffffffe')), Number.MIN_SAFE_INTEGER);
  assert.deepEqual(decodeCbor(hex('a0')), {});
  assert.deepEqual(decodeCbor(hex('80')), []);
  const prefix = decodeCborPrefix(hex('a1616101a1616202'));
  assert.deepEqual(prefix.value, { a: 1 });
  assert.equal(prefix.length, 4);
  const proto = decodeCbor(hex('a1695f5f70726f746f5f5f01')) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.equal(Object.keys(proto)[0], '__proto__');
});

test('deep nesting is refused with a typed error, not a stack overflow', () => {
  const deep = new Uint8Array(100_000).fill(0x81);
  assert.throws(
    () => decodeCbor(deep),
    (e) => e instanceof DataModelError && /nesting/.test(e.message),
  );
  assert.throws(
    () => checkCbor(deep),
    (e) => e instanceof DataModelError && /nesting/.test(e.message),
  );
  let value: unknown = 1;
  for (let i = 0; i < 1000; i++) value = [value];
  assert.throws(
    () => encodeCbor(value),
    (e) => e instanceof DataModelError && /nesting/.test(e.message),
  );
});

test('encodeCbor refuses values outside the data model', () => {
  const bad: [unknown, RegExp][] = [
    [1.5, /floats/],
    [NaN, /floats/],
    [2 ** 53, /safe integer/],
    [[undefined], /undefined/],
    [{ s: 'a\ud800b' }, /surrogate/],
    [new Map(), /plain objects/],
    [{ f: () => 1 }, /function/],
    [{ l: { $link: 'not-a-cid' } }, /CID/],
    [{ b: { $bytes: '!!' } }, /base64/],
  ];
  for (const [value, pattern] of bad) {
    assert.throws(
      () => encodeCbor(value),
      (e) => e instanceof DataModelError && pattern.test(e.message),
      String(value),
    );
  }
  // Undefined properties are omitted, like JSON.
  assert.deepEqual(encodeCbor({ a: 1, b: undefined }), encodeCbor({ a: 1 }));
});

test('records: $type required, encode/decode/CID, and agreement with @atproto/repo', async () => {
  const record = {
    $type: 'app.bsky.feed.post',
    text: 'hello ✨ world',
    createdAt: '2024-01-01T00:00:00.000Z',
    langs: ['en'],
  };
  const { cid, bytes } = recordBlock(record);
  assert.deepEqual(decodeRecord(bytes), record);
  assert.deepEqual(encodeRecord(record), bytes);
  assert.equal(formatCid(cidForRecord(record)), formatCid(cid));
  const { cidForRecord: referenceCid } = await import('@atproto/repo');
  assert.equal(formatCid(cid), (await referenceCid(record)).toString());
  assert.throws(
    () => encodeRecord({ text: 'no type' }),
    (e) => e instanceof DataModelError && /\$type/.test(e.message),
  );
  assert.throws(() => decodeRecord(encodeCbor({ text: 'no type' })), DataModelError);
  assert.throws(() => decodeRecord(encodeCbor(['x'])), /top-level/);
});

test('blob refs: typed and legacy are found, nested anywhere, each CID once', () => {
  const image = cidForRaw(new TextEncoder().encode('image'));
  const video = cidForRaw(new TextEncoder().encode('video'));
  const legacy = cidForRaw(new TextEncoder().encode('legacy'));
  const record = jsonToData({
    $type: 'app.bsky.feed.post',
    embed: {
      images: [
        { alt: 'a', image: { $type: 'blob', ref: { $link: formatCid(image) }, mimeType: 'image/png', size: 5 } },
        { alt: 'b', image: { $type: 'blob', ref: { $link: formatCid(image) }, mimeType: 'image/png', size: 5 } },
      ],
      media: { video: makeBlobRef(formatCid(video), 'video/mp4', 1234) },
    },
    avatar: { cid: formatCid(legacy), mimeType: 'image/jpeg' },
    notABlob: { cid: formatCid(legacy), mimeType: 'image/jpeg', extra: 1 },
    link: { $link: formatCid(legacy) },
  });
  assert.deepEqual(findBlobRefs(record), [
    { cid: formatCid(image), mimeType: 'image/png', size: 5 },
    { cid: formatCid(video), mimeType: 'video/mp4', size: 1234 },
    { cid: formatCid(legacy), mimeType: 'image/jpeg', size: null },
  ]);
  // Same set after a CBOR round-trip (wrappers instead of JSON objects; keys now in canonical order).
  const byCid = (a: { cid: string }, b: { cid: string }) => (a.cid < b.cid ? -1 : 1);
  assert.deepEqual(findBlobRefs(decodeCbor(encodeCbor(record))).sort(byCid), findBlobRefs(record).sort(byCid));
  const blob = makeBlobRef(image, 'image/png', 5);
  assert.ok(isBlobRef(blob));
  assert.deepEqual(JSON.parse(JSON.stringify(blob)), {
    $type: 'blob',
    ref: { $link: formatCid(image) },
    mimeType: 'image/png',
    size: 5,
  });
  // From the bytes, without decoding what cannot hold one: the same references.
  assert.deepEqual(findBlobRefsInCbor(encodeCbor(record)), findBlobRefs(decodeCbor(encodeCbor(record))));
  assert.deepEqual(findBlobRefsInCbor(encodeCbor({ $type: 'app.bsky.feed.post', text: 'no blobs' })), []);
  // A mimeType that belongs to no valid reference finds nothing (and still checks the encoding).
  assert.deepEqual(findBlobRefsInCbor(encodeCbor({ mimeType: 'image/png', size: 3 })), []);
  assert.throws(() => findBlobRefsInCbor(hex('a1616101' + '00')), /trailing/);
  assert.equal(readBlobRef({ $type: 'blob', ref: { $link: formatCid(image) }, mimeType: 'x', size: -1 }), null);
  assert.throws(() => makeBlobRef(image, '', 1), DataModelError);
});

test('JSON form: $bytes tolerates padding on input, emits none; parseDataJson reports bad JSON', () => {
  const value = parseDataJson('{"b":{"$bytes":"AQID"},"p":{"$bytes":"AQI="}}');
  assert.ok(value.b instanceof BytesWrapper);
  assert.deepEqual(dataToJson(value), { b: { $bytes: 'AQID' }, p: { $bytes: 'AQI' } });
  assert.throws(
    () => parseDataJson('{'),
    (e) => e instanceof DataModelError && /not valid JSON/.test(e.message),
  );
});

// Deterministic pseudo-random data-model values for cross-checking against the reference codecs.
function randomValue(seed: number): DataValue {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = (depth: number): DataValue => {
    const r = next();
    if (depth > 3 || r < 0.3) {
      const s = next();
      if (s < 0.2) return Math.floor((next() - 0.5) * 2 ** (next() * 53));
      if (s < 0.4) {
        const codePoint = 0x20 + Math.floor(next() * 0x2ffff);
        // Skip the surrogate range: a lone surrogate is not valid Unicode (encodeCbor refuses it).
        return 'str' + String.fromCodePoint(codePoint >= 0xd800 && codePoint < 0xe000 ? 0xe9 : codePoint) + next();
      }
      if (s < 0.5) return next() < 0.5;
      if (s < 0.6) return null;
      if (s < 0.8) return new BytesWrapper(Uint8Array.from({ length: Math.floor(next() * 40) }, () => next() * 256));
      return new CidLinkWrapper(cidForRaw(Uint8Array.of(Math.floor(next() * 256))).bytes);
    }
    if (r < 0.6) return Array.from({ length: Math.floor(next() * 5) }, () => pick(depth + 1));
    const obj: Record<string, DataValue> = {};
    const n = Math.floor(next() * 6);
    for (let i = 0; i < n; i++) {
      const key = next() < 0.2 ? 'ké' + Math.floor(next() * 100) : 'k'.repeat(1 + Math.floor(next() * 4)) + i;
      obj[key] = pick(depth + 1);
    }
    return obj;
  };
  return pick(0);
}

// The reference codec's in-memory form: CID objects and Uint8Arrays.
function toIpld(value: DataValue): unknown {
  if (value instanceof CidLinkWrapper) return parseCidFromBytes(value.bytes);
  if (value instanceof BytesWrapper) return value.buf;
  if (Array.isArray(value)) return value.map(toIpld);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toIpld(v as DataValue)]));
  }
  return value;
}

test('cross-check: encoding matches the reference codec (@atproto/common) on random values', (t) => {
  let checked = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const value = { root: randomValue(seed) };
    const ours = encodeCbor(value);
    const reference = new Uint8Array(referenceEncode(toIpld(value)));
    assert.deepEqual(ours, reference, `seed ${seed}`);
    assert.deepEqual(toIpld(decodeCbor(ours) as DataValue), referenceDecode(ours));
    assert.deepEqual(encodeCbor(decodeCbor(reference)), reference);
    assert.deepEqual(atcuteEncode(decodeCbor(ours)), ours);
    checked++;
  }
  t.diagnostic(`random values cross-checked against the reference DAG-CBOR codec: ${checked}`);
});
