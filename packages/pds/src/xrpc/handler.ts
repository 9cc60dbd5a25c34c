/**
 * The declaration of one XRPC method: everything the server needs to know about it in one
 * place. Each file under api/ default-exports one, made by `xrpcMethod(lexicon, {...})` from
 * the method's lexicon schema (`@atcute/atproto`, `@atcute/bluesky`): the NSID, whether it is a
 * query or a procedure, and the shape of its params, input and output come from the schema;
 * the declaration adds the auth mode, rate limits and the handler.
 *
 * The server checks params and input against the schema before the handler runs, so a handler
 * receives them typed and valid; bad input is a 400 InvalidRequest naming the field, worded as
 * the reference's lexicon validator words it (xrpc/lexicon.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {
  InferOutput,
  ObjectSchema,
  XRPCBlobBodyParam,
  XRPCLexBodyParam,
  XRPCProcedureMetadata,
  XRPCQueryMetadata,
} from '@atcute/lexicons/validations';
import type { AuthMode, AuthResultByMode } from '../auth/verifier.ts';
import type { AppContext } from '../context.ts';
import type { RateLimitRule } from '../rate-limit/rate-limiter.ts';
import type { LexMethod } from './lexicon.ts';

export type XrpcOutput =
  | { json: unknown; headers?: Record<string, string> }
  | { body: AsyncIterable<Uint8Array> | Uint8Array; contentType: string; headers?: Record<string, string> }
  /** A 302 to where the bytes are served (getBlob behind a CDN). */
  | { redirect: string; headers?: Record<string, string> }
  | undefined
  // Handlers that answer with an empty 200 simply return.
  | void;

/** The params a lexicon declares, as the handler receives them (defaults applied). */
export type ParamsOf<S extends LexMethod> = S['params'] extends ObjectSchema ? InferOutput<S['params']> : object;

/**
 * The input a lexicon declares: the checked JSON body; for a binary (`blob`) body the decoded
 * request body as a size-limited stream of chunks; nothing for a query or a procedure without one.
 */
export type InputOf<S extends LexMethod> = S extends XRPCProcedureMetadata
  ? S['input'] extends XRPCLexBodyParam
    ? InferOutput<S['input']['schema']>
    : S['input'] extends XRPCBlobBodyParam
      ? AsyncIterable<Uint8Array>
      : undefined
  : undefined;

export interface XrpcHandlerContext<M extends AuthMode = AuthMode, P = unknown, I = unknown> {
  ctx: AppContext;
  nsid: string;
  params: P;
  input: I;
  /** Media type of the request body, lower-cased, without parameters. */
  inputEncoding: string | undefined;
  auth: AuthResultByMode[M];
  req: IncomingMessage;
  res: ServerResponse;
}

/** What a rate-limit rule may key and count a call by: its checked params and input, its auth. */
export interface RateLimitedCall<M extends AuthMode = AuthMode, P = unknown, I = unknown> {
  params: P;
  input: I;
  auth: AuthResultByMode[M];
  /** The client's address (rate-limit/rate-limiter.ts `clientIp`). */
  ip: string;
}

/** A method as its file declares it; `xrpcMethod` adds what the lexicon says. */
export interface XrpcMethodDeclaration<M extends AuthMode = AuthMode, P = unknown, I = unknown> {
  auth: M;
  /** Let taken-down sessions call this (access, optionalAccess and optionalAccessOrAdmin modes only). */
  allowTakendown?: boolean;
  /** Body size limit in bytes (default DEFAULT_MAX_JSON_BYTES for JSON, the blob limit for binary input). */
  maxInputBytes?: number | ((ctx: AppContext) => number);
  /**
   * The limits a call counts against besides the global per-IP one (the reference's, when
   * PDS_RATE_LIMITS_ENABLED): checked after auth and input, before the handler.
   */
  rateLimit?: readonly RateLimitRule<RateLimitedCall<M, P, I>>[];
  handler(c: XrpcHandlerContext<M, P, I>): Promise<XrpcOutput>;
}

export interface XrpcMethod<M extends AuthMode = AuthMode, P = unknown, I = unknown> extends XrpcMethodDeclaration<
  M,
  P,
  I
> {
  nsid: string;
  type: 'query' | 'procedure';
  lexicon: LexMethod;
}

/** Declares a method of `lexicon`, its handler's params, input and auth typed from the schema and the mode. */
export function xrpcMethod<S extends XRPCQueryMetadata | XRPCProcedureMetadata, M extends AuthMode>(
  lexicon: S,
  declaration: XrpcMethodDeclaration<M, ParamsOf<S>, InputOf<S>>,
): XrpcMethod<M, ParamsOf<S>, InputOf<S>> {
  return {
    ...declaration,
    nsid: lexicon.nsid,
    type: lexicon.type === 'xrpc_query' ? 'query' : 'procedure',
    lexicon,
  };
}
