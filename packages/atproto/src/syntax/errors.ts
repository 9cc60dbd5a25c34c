/**
 * The one error type every syntax validator throws. Callers (the lexicon validator, the XRPC
 * layer) switch on `kind`/`code`; people read the message, which always names the kind of
 * string, quotes (a prefix of) the input, and says what is wrong with it.
 */
import { AtprotoError } from '../errors.ts';

export type SyntaxKind =
  | 'handle'
  | 'DID'
  | 'NSID'
  | 'TID'
  | 'record key'
  | 'AT-URI'
  | 'at-identifier'
  | 'datetime'
  | 'CID string'
  | 'language tag'
  | 'URI'
  | 'repo key';

const CODES: Record<SyntaxKind, string> = {
  handle: 'InvalidHandle',
  DID: 'InvalidDid',
  NSID: 'InvalidNsid',
  TID: 'InvalidTid',
  'record key': 'InvalidRecordKey',
  'AT-URI': 'InvalidAtUri',
  'at-identifier': 'InvalidAtIdentifier',
  datetime: 'InvalidDatetime',
  'CID string': 'InvalidCidString',
  'language tag': 'InvalidLanguageTag',
  URI: 'InvalidUri',
  'repo key': 'InvalidRepoKey',
};

/** Inputs can be megabytes of attacker-controlled text: only a prefix goes into messages. */
const QUOTE_LIMIT = 80;

function quote(input: unknown): string {
  if (typeof input !== 'string') return `(${input === null ? 'null' : typeof input})`;
  if (input.length <= QUOTE_LIMIT) return JSON.stringify(input);
  return `${JSON.stringify(input.slice(0, QUOTE_LIMIT))}... (${input.length} characters)`;
}

export class SyntaxValidationError extends AtprotoError {
  readonly kind: SyntaxKind;
  readonly problem: string;
  constructor(kind: SyntaxKind, input: unknown, problem: string) {
    super(CODES[kind], `invalid ${kind} ${quote(input)}: ${problem}`);
    this.kind = kind;
    this.problem = problem;
  }
}

/**
 * Every validator is written once, as a function returning `null` for valid input or a short
 * description of the first problem. `isValidX` compares with null (no allocation on the happy
 * path); `assertValidX` turns the description into a SyntaxValidationError.
 */
export type ProblemFinder = (input: unknown) => string | null;

export function assertNoProblem(kind: SyntaxKind, input: unknown, problem: string | null): void {
  if (problem !== null) throw new SyntaxValidationError(kind, input, problem);
}
