import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TID } from '@atproto/common';
import {
  assertValidTid,
  compareTid,
  formatTid,
  isValidTid,
  nextTid,
  parseTid,
  TidError,
  TidGenerator,
  tidToDate,
} from '../src/tid.ts';

const syntax = join(import.meta.dirname, '../../../test/fixtures/interop/syntax');
// Per the fixtures' README: skip blank and '#' lines, never trim.
const lines = (name: string) =>
  readFileSync(join(syntax, name), 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'));

test('tid_syntax_valid.txt: every line accepted and parses', (t) => {
  const valid = lines('tid_syntax_valid.txt');
  for (const tid of valid) {
    assert.ok(isValidTid(tid), tid);
    const { timestamp, clockId } = parseTid(tid);
    assert.equal(formatTid(timestamp, clockId), tid);
  }
  assert.ok(valid.length >= 4);
  t.diagnostic(`valid TID vectors run: ${valid.length}`);
});

test('tid_syntax_invalid.txt: every line rejected with TidError', (t) => {
  const invalid = lines('tid_syntax_invalid.txt');
  for (const tid of invalid) {
    assert.equal(isValidTid(tid), false, tid);
    assert.throws(
      () => parseTid(tid),
      (e) => e instanceof TidError && e.message.includes('not a valid TID'),
      tid,
    );
  }
  assert.ok(invalid.length >= 8);
  t.diagnostic(`invalid TID vectors run: ${invalid.length}`);
});

test('format/parse round-trip at the edges and agree with @atproto/common', () => {
  assert.equal(formatTid(0, 0), '2222222222222');
  assert.equal(formatTid(2 ** 53 - 1, 1023), 'bzzzzzzzzzzzz');
  assert.deepEqual(parseTid('bzzzzzzzzzzzz'), { timestamp: 2 ** 53 - 1, clockId: 1023 });
  // Syntactically valid, but its timestamp would not be exact as a number: refused by parse only.
  assert.ok(isValidTid('jzzzzzzzzzzzz'));
  assert.throws(
    () => parseTid('czzzzzzzzzzzz'),
    (e) => e instanceof TidError && /2\^53/.test(e.message),
  );
  for (const [ts, clock] of [
    [1_700_000_000_123_456, 0],
    [1_732_000_000_000_001, 31],
    [1_732_000_000_000_001, 32],
    [1_999_999_999_999_999, 1023],
  ] as const) {
    const ours = formatTid(ts, clock);
    assert.equal(ours, TID.fromTime(ts, clock).toString());
    assert.deepEqual(parseTid(ours), { timestamp: ts, clockId: clock });
  }
  assert.throws(() => formatTid(-1, 0), TidError);
  assert.throws(() => formatTid(2 ** 53, 0), TidError);
  assert.throws(() => formatTid(0, 1024), TidError);
  assert.throws(() => formatTid(1.5, 0), TidError);
});

test('compare orders by timestamp then clock id, and validates', () => {
  const a = formatTid(1000, 5);
  const b = formatTid(1000, 6);
  const c = formatTid(1001, 0);
  assert.ok(compareTid(a, b) < 0);
  assert.ok(compareTid(b, c) < 0);
  assert.ok(compareTid(c, a) > 0);
  assert.equal(compareTid(a, a), 0);
  assert.throws(() => compareTid(a, 'nope'), TidError);
  assert.throws(() => assertValidTid('3jzfcijpj2z2a '), TidError);
  assert.equal(tidToDate(formatTid(1_700_000_000_123_456, 0)).getTime(), 1_700_000_000_123);
});

test('the process generator never repeats and only increases', () => {
  let prev = nextTid();
  const seen = new Set([prev]);
  for (let i = 0; i < 10_000; i++) {
    const tid = nextTid();
    assert.ok(tid > prev, `${tid} > ${prev}`);
    assert.ok(!seen.has(tid));
    seen.add(tid);
    prev = tid;
  }
  const now = Date.now() * 1000;
  assert.ok(Math.abs(parseTid(prev).timestamp - now) < 60_000_000, 'timestamps follow the wall clock');
});

test('a clock that steps backwards does not make TIDs go backwards', () => {
  const times = [5_000_000, 5_000_000, 4_000_000, 3_000_000, 5_000_001, 9_000_000, 1];
  const gen = new TidGenerator({ clockId: 7, nowMicros: () => times.shift()! });
  const out = Array.from({ length: 7 }, () => gen.next());
  assert.deepEqual(
    out.map((t) => parseTid(t).timestamp),
    [5_000_000, 5_000_001, 5_000_002, 5_000_003, 5_000_004, 9_000_000, 9_000_001],
  );
  assert.ok(out.every((t) => parseTid(t).clockId === 7));
});

test('next(prev) is strictly greater than a previous TID from the future or another clock', () => {
  const gen = new TidGenerator({ clockId: 10, nowMicros: () => 1_000 });
  const future = formatTid(50_000, 900);
  const after = gen.next(future);
  assert.ok(after > future);
  assert.deepEqual(parseTid(after), { timestamp: 50_001, clockId: 10 });
  // Same microsecond but a smaller clock id: our clock id already sorts after it.
  const gen2 = new TidGenerator({ clockId: 10, nowMicros: () => 1_000 });
  const same = formatTid(50_000, 3);
  assert.deepEqual(parseTid(gen2.next(same)), { timestamp: 50_000, clockId: 10 });
  // Subsequent TIDs keep increasing past it.
  assert.ok(gen.next() > after);
  assert.ok(nextTid(formatTid(2 ** 52, 0)) > formatTid(2 ** 52, 0));
  assert.throws(() => gen.next('bad'), TidError);
  assert.throws(() => new TidGenerator({ clockId: 2000 }), TidError);
});
