/**
 * The shape of one XRPC method. Each file under api/ default-exports one of these; the
 * server parses params and body, runs the auth verifier for `auth`, calls `handler`, and
 * writes its output (or maps its error to `{error, message}`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthMode, AuthResultByMode } from '../auth/verifier.ts';
import type { AppContext } from '../context.ts';
import type { Params } from './params.ts';

export type XrpcOutput =
  | { json: unknown; headers?: Record<string, string> }
  | { body: AsyncIterable<Uint8Array> | Uint8Array; contentType: string; headers?: Record<string, string> }
  | undefined
  // Handlers that answer with an empty 200 simply return.
  | void;

export interface XrpcHandlerContext<M extends AuthMode = AuthMode> {
  ctx: AppContext;
  nsid: string;
  params: Params;
  /**
   * The parsed JSON body (undefined when none was sent), or for `rawInput` methods the
   * decoded request body as a size-limited stream of chunks.
   */
  input: unknown;
  /** Media type of the request body, lower-cased, without parameters. */
  inputEncoding: string | undefined;
  auth: AuthResultByMode[M];
  req: IncomingMessage;
  res: ServerResponse;
}

export interface XrpcMethod<M extends AuthMode = AuthMode> {
  nsid: string;
  type: 'query' | 'procedure';
  auth: M;
  /** Let taken-down sessions call this (access, optionalAccess and optionalAccessOrAdmin modes only). */
  allowTakendown?: boolean;
  /** Hand the body to the handler as a stream (`input`) instead of parsing it as JSON. */
  rawInput?: true;
  /** Body size limit in bytes (default DEFAULT_MAX_JSON_BYTES for JSON, the blob limit for raw input). */
  maxInputBytes?: number | ((ctx: AppContext) => number);
  handler(c: XrpcHandlerContext<M>): Promise<XrpcOutput>;
}

/** Declares a method with its handler's auth result typed from the mode. */
export function xrpcMethod<M extends AuthMode>(method: XrpcMethod<M>): XrpcMethod<M> {
  return method;
}

export function rawInputStream(c: XrpcHandlerContext): AsyncIterable<Uint8Array> {
  return c.input as AsyncIterable<Uint8Array>;
}
