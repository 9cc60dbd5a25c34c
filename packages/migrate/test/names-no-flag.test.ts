/**
 * The engine and the tools beside it say what to do next as data (NextStep) and in plain words;
 * only a front end names its flags and variables. This reads every string in packages/migrate/src
 * (comments are not strings) and fails on a command-line flag or a PORTAGE_ variable.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const SRC = join(import.meta.dirname, '..', 'src');

/** Strings that name an option of something other than the `portage` command line. */
const ALLOWED = new Map([['memory.node.ts', new Set(['--expose-gc'])]]);

const FLAG = /(?<![\w-])--[a-z][a-z0-9-]*/g;
const VARIABLE = /\bPORTAGE_[A-Z_]+/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** Every string literal and every text part of a template literal in `code`, with its line. */
function stringsOf(file: string, code: string): { text: string; line: number }[] {
  const source = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true);
  const found: { text: string; line: number }[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      found.push({ text: node.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The flags and variables named in the strings of `code`, as `path:line name`. */
function namedIn(path: string, code: string): string[] {
  const allowed = ALLOWED.get(path) ?? new Set<string>();
  return stringsOf(path, code).flatMap(({ text, line }) =>
    [...text.matchAll(FLAG), ...text.matchAll(VARIABLE)]
      .map((m) => m[0])
      .filter((name) => !allowed.has(name))
      .map((name) => `${path}:${line} ${name}`),
  );
}

describe('packages/migrate names no command-line flag', () => {
  it('finds flags in strings, and not in comments', () => {
    const sample = [
      '// Pass --backup here: a comment may name a flag.',
      "const a = 'Give --backup <dir>.';",
      '/* Set PORTAGE_OLD_PASSWORD */ const b = `Run ${a} with --plc-token <code>, ${a} then --fix`;',
      "const c = 'Set PORTAGE_PASSWORD.';",
      "const d = 'a --- rule, and x--y';",
    ].join('\n');
    assert.deepEqual(namedIn('sample.ts', sample), [
      'sample.ts:2 --backup',
      'sample.ts:3 --plc-token',
      'sample.ts:3 --fix',
      'sample.ts:4 PORTAGE_PASSWORD',
    ]);
    assert.deepEqual(namedIn('memory.node.ts', "v8.setFlagsFromString('--expose-gc');"), []);
  });

  it('in any string of packages/migrate/src', () => {
    const files = sourceFiles(SRC);
    assert.ok(files.length > 20, 'the sources are where this test looks');
    const named = files.flatMap((file) => namedIn(relative(SRC, file), readFileSync(file, 'utf8')));
    assert.deepEqual(named, [], 'say it as a NextStep for the front end to word; the CLI names its flags');
  });
});
