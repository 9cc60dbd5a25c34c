import { ComAtprotoAdminUpdateSubjectStatus } from '@atcute/atproto';
import { parseCid } from '@portage/atproto/cid';
import { recordSubject } from '../../../../actor-store/subject.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Takes an account, a record or a blob down, or restores it; deactivates or reactivates an
 * account. An account's change is announced on the firehose (#account) with the change itself.
 */
export default xrpcMethod(ComAtprotoAdminUpdateSubjectStatus.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, input: { subject, takedown, deactivated } }) {
    if (takedown?.applied && deactivated !== undefined && !deactivated.applied) {
      throw InvalidRequest('Cannot activate and takedown an account at the same time');
    }
    // The reference's default reference for a takedown with none: when it was applied.
    const ref = takedown ? (takedown.applied ? (takedown.ref ?? new Date().toISOString()) : null) : undefined;
    const type = subject.$type;
    return withRepoErrors(() => {
      if (type === 'com.atproto.admin.defs#repoRef') {
        const did = subject.did;
        if (!ctx.accountManager.getAccount(did)) throw InvalidRequest('Subject not found', 'NotFound');
        if (ref !== undefined) ctx.accountManager.setTakedown(did, ref);
        if (deactivated?.applied) ctx.accountManager.deactivateAccount(did, null);
        else if (deactivated) ctx.accountManager.activateAccount(did);
        if (ref === undefined && !deactivated) ctx.accountManager.announceStatus(did);
      } else if (type === 'com.atproto.repo.strongRef') {
        const record = recordSubject(subject.uri);
        if (
          ref !== undefined &&
          ctx.actorStore.setRecordTakedown(record.did, record.collection, record.rkey, ref) === undefined
        ) {
          throw InvalidRequest('Subject not found', 'NotFound');
        }
      } else if (type === 'com.atproto.admin.defs#repoBlobRef') {
        if (ref !== undefined && !ctx.actorStore.setBlobTakedown(subject.did, parseCid(subject.cid), ref)) {
          throw InvalidRequest('Subject not found', 'NotFound');
        }
      } else {
        throw InvalidRequest(`Invalid subject (${String(type)})`);
      }
      return { json: { subject, takedown } };
    });
  },
});
