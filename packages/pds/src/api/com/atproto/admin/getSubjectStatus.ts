import { ComAtprotoAdminGetSubjectStatus } from '@atcute/atproto';
import { parseCid } from '@portage/atproto/cid';
import { recordSubject } from '../../../../actor-store/subject.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

const statusAttr = (ref: string | null) => (ref === null ? { applied: false } : { applied: true, ref });

/** An account's, a record's or a blob's takedown (and an account's deactivation). */
export default xrpcMethod(ComAtprotoAdminGetSubjectStatus.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, params: { did, uri, blob } }) {
    return withRepoErrors(() => {
      if (blob !== undefined) {
        if (did === undefined) throw InvalidRequest('Must provide a did to request blob state');
        if (!ctx.accountManager.getAccount(did)) throw InvalidRequest('Subject not found', 'NotFound');
        const info = ctx.actorStore.getBlobInfo(did, parseCid(blob));
        if (!info) throw InvalidRequest('Subject not found', 'NotFound');
        return {
          json: {
            subject: { $type: 'com.atproto.admin.defs#repoBlobRef' as const, did, cid: blob },
            takedown: statusAttr(info.takedownRef),
          },
        };
      }
      if (uri !== undefined) {
        const record = recordSubject(uri);
        if (!ctx.accountManager.getAccount(record.did)) throw InvalidRequest('Subject not found', 'NotFound');
        const found = ctx.actorStore.getRecordTakedown(record.did, record.collection, record.rkey);
        if (!found) throw InvalidRequest('Subject not found', 'NotFound');
        return {
          json: {
            subject: { $type: 'com.atproto.repo.strongRef' as const, uri, cid: found.cid },
            takedown: statusAttr(found.takedownRef),
          },
        };
      }
      if (did !== undefined) {
        const account = ctx.accountManager.getAccount(did);
        if (!account) throw InvalidRequest('Subject not found', 'NotFound');
        return {
          json: {
            subject: { $type: 'com.atproto.admin.defs#repoRef' as const, did },
            takedown: statusAttr(account.takedownRef),
            deactivated: account.deactivatedAt ? { applied: true } : { applied: false },
          },
        };
      }
      throw InvalidRequest('No provided subject');
    });
  },
});
