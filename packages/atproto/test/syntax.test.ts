import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { AtprotoError } from '../src/errors.ts';
import {
  assertValidAtIdentifier,
  assertValidAtUri,
  assertValidCidString,
  assertValidDatetime,
  assertValidDid,
  assertValidHandle,
  assertValidLanguage,
  assertValidNsid,
  assertValidRecordKey,
  assertValidTid,
  assertValidUri,
  formatAtUri,
  isValidDatetime,
  isValidDid,
  isValidHandle,
  isValidMstKey,
  isValidRepoKey,
  isValidTid,
  isWellFormedLanguage,
  normalizeHandle,
  normalizeNsid,
  parseAtUri,
  parseDatetime,
  parseDid,
  parseHandle,
  parseNsid,
  parseRepoKey,
  SyntaxValidationError,
} from '../src/syntax/index.ts';

const FIXTURES = new URL('../../../test/fixtures/interop/syntax/', import.meta.url);

/** The interop rules: skip empty lines and `#` comments, never trim (whitespace is the test). */
function readVectors(file: string): string[] {
  const text = readFileSync(new URL(file, FIXTURES), 'utf8');
  return text.split('\n').filter((line) => line.length > 0 && !line.startsWith('#'));
}

type Assert = (input: unknown) => void;

// fixture file prefix -> [kind as named in error messages, assertion]
const KINDS: Record<string, [string, Assert]> = {
  atidentifier: ['at-identifier', assertValidAtIdentifier],
  aturi: ['AT-URI', assertValidAtUri],
  cid: ['CID string', assertValidCidString],
  datetime: ['datetime', assertValidDatetime],
  did: ['DID', assertValidDid],
  handle: ['handle', assertValidHandle],
  language: ['language tag', assertValidLanguage],
  nsid: ['NSID', assertValidNsid],
  recordkey: ['record key', assertValidRecordKey],
  tid: ['TID', assertValidTid],
  uri: ['URI', assertValidUri],
};

describe('interop syntax vectors', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'));

  test('every fixture file belongs to a known kind', () => {
    for (const file of files) {
      const match = /^([a-z]+)_(syntax_valid|syntax_invalid|parse_invalid)\.txt$/.exec(file);
      assert.ok(match, `unexpected fixture file ${file}`);
      assert.ok(match[1]! in KINDS, `no validator for ${file}`);
    }
  });

  for (const [prefix, [kind, assertValid]] of Object.entries(KINDS)) {
    const valid = files.includes(`${prefix}_syntax_valid.txt`) ? readVectors(`${prefix}_syntax_valid.txt`) : [];
    const invalid = [
      ...(files.includes(`${prefix}_syntax_invalid.txt`) ? readVectors(`${prefix}_syntax_invalid.txt`) : []),
      ...(files.includes(`${prefix}_parse_invalid.txt`) ? readVectors(`${prefix}_parse_invalid.txt`) : []),
    ];
    test(`${prefix}: ${valid.length} valid, ${invalid.length} invalid`, () => {
      assert.ok(valid.length > 0 && invalid.length > 0, `${prefix} vectors missing`);
      for (const input of valid) {
        assert.doesNotThrow(() => assertValid(input), `should accept ${JSON.stringify(input)}`);
      }
      for (const input of invalid) {
        assert.throws(
          () => assertValid(input),
          (err: unknown) =>
            err instanceof SyntaxValidationError &&
            err instanceof AtprotoError &&
            err.message.startsWith(`invalid ${kind} `) &&
            err.problem.length > 0,
          `should reject ${JSON.stringify(input)}`,
        );
      }
    });
  }
});

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SyntaxValidationError);
    return err.message;
  }
  assert.fail('expected a SyntaxValidationError');
}

describe('error messages name the kind, the input and the problem', () => {
  test('handle label too long', () => {
    const input = `short.${'o'.repeat(64)}.test`;
    assert.match(
      problemOf(() => assertValidHandle(input)),
      /^invalid handle "short\.o+.*: label 2 exceeds 63 characters \(64\)$/,
    );
  });
  test('error code per kind', () => {
    assert.throws(() => assertValidDid('did:METHOD:x'), { code: 'InvalidDid', kind: 'DID' });
    assert.throws(() => assertValidNsid('a.b'), { code: 'InvalidNsid' });
    assert.throws(() => assertValidTid('x'), { code: 'InvalidTid' });
  });
  test('non-ASCII characters are shown by code point', () => {
    assert.match(
      problemOf(() => assertValidHandle('bücher.test')),
      /character U\+00FC at position 1/,
    );
  });
  test('long inputs are truncated in the message', () => {
    const message = problemOf(() => assertValidHandle('x'.repeat(10_000)));
    assert.ok(message.length < 200, message);
    assert.match(message, /\(10000 characters\)/);
  });
  test('non-string input is rejected, not crashed on', () => {
    for (const value of [undefined, null, 42, {}, ['did:plc:x']]) {
      assert.equal(isValidDid(value), false);
      assert.equal(isValidHandle(value), false);
      assert.throws(
        () => assertValidDatetime(value),
        /invalid datetime \((undefined|null|number|object)\): not a string/,
      );
    }
  });
});

describe('parsers and normalization', () => {
  test('handles normalize to lowercase', () => {
    assert.equal(normalizeHandle('Alice.Bsky.SOCIAL'), 'alice.bsky.social');
    assert.equal(parseHandle('XX.LCS.MIT.EDU'), 'xx.lcs.mit.edu');
    assert.throws(() => parseHandle('nodot'), SyntaxValidationError);
  });

  test('NSID authority and name', () => {
    assert.deepEqual(parseNsid('app.bsky.feed.post'), {
      authority: 'feed.bsky.app',
      name: 'post',
      segments: ['app', 'bsky', 'feed', 'post'],
    });
    assert.equal(parseNsid('com.example.getFooBar').name, 'getFooBar');
    assert.equal(normalizeNsid('COM.Example.fooBar'), 'com.example.fooBar');
  });

  test('DID method and identifier', () => {
    assert.deepEqual(parseDid('did:web:localhost%3A1234'), { method: 'web', identifier: 'localhost%3A1234' });
    assert.deepEqual(parseDid('did:plc:a:b'), { method: 'plc', identifier: 'a:b' });
  });

  test('AT-URI parts', () => {
    assert.deepEqual(parseAtUri('at://did:plc:asdf123/app.bsky.feed.post/3jzfcijpj2z2a'), {
      authority: 'did:plc:asdf123',
      authorityKind: 'did',
      collection: 'app.bsky.feed.post',
      rkey: '3jzfcijpj2z2a',
    });
    assert.deepEqual(parseAtUri('at://alice.test'), { authority: 'alice.test', authorityKind: 'handle' });
    assert.deepEqual(parseAtUri('at://alice.test/app.bsky.actor.profile'), {
      authority: 'alice.test',
      authorityKind: 'handle',
      collection: 'app.bsky.actor.profile',
    });
    assert.match(
      problemOf(() => parseAtUri('at://did:plc:x/app.bsky.feed.post/a#frag')),
      /fragment/,
    );
    assert.match(
      problemOf(() => parseAtUri('at://did:plc:x/notnsid')),
      /collection is not a valid NSID/,
    );
    assert.equal(
      formatAtUri({ authority: 'did:plc:x', collection: 'app.bsky.feed.like', rkey: 'self' }),
      'at://did:plc:x/app.bsky.feed.like/self',
    );
    assert.throws(() => formatAtUri({ authority: 'did:plc:x', rkey: 'self' }), SyntaxValidationError);
  });

  test('repo keys: strict for writing, structural for reading', () => {
    assert.ok(isValidRepoKey('app.bsky.feed.post/3jzfcijpj2z2a'));
    assert.deepEqual(parseRepoKey('app.bsky.feed.post/self'), { collection: 'app.bsky.feed.post', rkey: 'self' });
    for (const bad of [
      'app.bsky.feed.post',
      'app.bsky.feed.post/',
      '/self',
      'a/b/c',
      'notnsid/self',
      'app.bsky.feed.post/..',
      `app.bsky.feed.post/${'a'.repeat(1010)}`,
    ]) {
      assert.equal(isValidRepoKey(bad), false, bad);
    }
    // Keys the reference tree accepts although the collection is not an NSID.
    assert.ok(isValidMstKey('com.example.record/3jzfcijpj2z2a'));
    assert.ok(isValidMstKey('notnsid/self'));
    for (const bad of ['noslash', '/x', 'x/', 'a/b/c', 'col/sp ace', `a/${'b'.repeat(1023)}`]) {
      assert.equal(isValidMstKey(bad), false, bad);
    }
  });

  test('datetimes parse to the instant they name', () => {
    assert.equal(parseDatetime('1985-04-12T23:20:50.123Z').toISOString(), '1985-04-12T23:20:50.123Z');
    assert.equal(parseDatetime('1985-04-12T23:20:50.1239Z').toISOString(), '1985-04-12T23:20:50.123Z');
    assert.equal(parseDatetime('1985-04-12T23:20:50.1+01:45').toISOString(), '1985-04-12T21:35:50.100Z');
    assert.equal(parseDatetime('0010-01-01T00:00:00Z').getUTCFullYear(), 10);
    assert.equal(isValidDatetime('2024-02-29T00:00:00Z'), true);
    assert.equal(isValidDatetime('2023-02-29T00:00:00Z'), false);
    assert.equal(isValidDatetime('1900-02-29T00:00:00Z'), false);
    assert.equal(isValidDatetime('1985-06-30T23:59:60Z'), false);
    assert.match(
      problemOf(() => parseDatetime('1985-04-31T00:00:00Z')),
      /day 31 does not exist/,
    );
    assert.match(
      problemOf(() => parseDatetime('9999-12-31T23:00:00-05:00')),
      /after 9999/,
    );
  });

  test('language: the lenient check accepts what the reference accepts on input', () => {
    for (const tag of readVectors('language_syntax_valid.txt')) assert.ok(isWellFormedLanguage(tag), tag);
    // Refused by the strict check (interop vectors), grammatical all the same.
    for (const tag of ['JA', 'jaja', 'de-DE-1901-1901', 'en-a-foo-a-bar']) {
      assert.equal(isWellFormedLanguage(tag), true, tag);
      assert.throws(() => assertValidLanguage(tag), SyntaxValidationError);
    }
    for (const tag of ['ja-', '.', '123', 'j', 'a-DE', 'en--US', 'en-x', 'verylonglang']) {
      assert.equal(isWellFormedLanguage(tag), false, tag);
    }
  });

  test('TIDs', () => {
    assert.ok(isValidTid('3jzfcijpj2z2a'));
    assert.equal(isValidTid('3jzfcijpj2z2A'), false);
  });
});
