/**
 * The declaration the repository write methods share (createRecord, putRecord, deleteRecord,
 * applyWrites): an access token, the reference's repo-write rate limit charged to the account
 * in points, and one commit to the repository the input names, which must be the caller's.
 * Each method says only which writes its input makes and how the result is answered.
 */
import type { XRPCLexBodyParam, XRPCProcedureMetadata } from '@atcute/lexicons/validations';
import type { WriteRequest } from '../actor-store/prepare-writes.ts';
import { type OwnRepoWriteResult, writeOwnRepo } from '../actor-store/repo-access.ts';
import type { AppContext } from '../context.ts';
import { type InputOf, xrpcMethod, type XrpcMethod } from '../xrpc/handler.ts';

interface RepoWriteInput {
  repo: string;
  swapCommit?: string;
}

export interface RepoWrite<I> {
  /** What the call costs against the repo-write limit (create 3, update 2, delete 1). */
  points(input: I): number;
  /** The writes, given the repository's DID. */
  writes(input: I, did: string, ctx: AppContext): WriteRequest[];
  /** True when there is nothing to commit (deleting a record that is not there). */
  nothingToWrite?(input: I, did: string, ctx: AppContext): boolean;
  /** The answer, from the commit and the written records. */
  output(written: OwnRepoWriteResult): unknown;
}

export function repoWriteMethod<S extends XRPCProcedureMetadata<null, XRPCLexBodyParam>>(
  lexicon: S,
  spec: RepoWrite<InputOf<S> & RepoWriteInput>,
): XrpcMethod<'access', object, InputOf<S>> {
  type I = InputOf<S> & RepoWriteInput;
  return xrpcMethod(lexicon, {
    auth: 'access',
    rateLimit: [{ policy: 'repoWrite', key: ({ auth }) => auth.did, points: ({ input }) => spec.points(input as I) }],
    async handler({ ctx, input, auth }) {
      const body = input as I;
      const written = await writeOwnRepo(ctx, auth.did, {
        repo: body.repo,
        swapCommit: body.swapCommit,
        writes: (did) => spec.writes(body, did, ctx),
        nothingToWrite: spec.nothingToWrite && ((did) => spec.nothingToWrite!(body, did, ctx)),
      });
      return { json: spec.output(written) };
    },
  });
}
