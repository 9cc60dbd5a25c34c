/**
 * The routing table: every XRPC method this PDS serves, one import per file under api/
 * (the file path mirrors the NSID). A method not listed here answers 501 MethodNotImplemented.
 */
import type { XrpcMethod } from '../xrpc/handler.ts';
import describeServer from './com/atproto/server/describeServer.ts';

export const methods: XrpcMethod[] = [describeServer];
