import { ComAtprotoServerDescribeServer } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * What a client needs before signing up: our DID, handle domains, whether invites are needed.
 * Plus, outside the lexicon (open objects allow it), the largest blob uploadBlob takes, so a
 * migration can refuse an account with a larger one before it creates anything.
 */
export default xrpcMethod(ComAtprotoServerDescribeServer.mainSchema, {
  auth: 'none',
  async handler({ ctx }) {
    const { config } = ctx;
    const links: Record<string, string> = {};
    if (config.privacyPolicyUrl) links.privacyPolicy = config.privacyPolicyUrl;
    if (config.termsOfServiceUrl) links.termsOfService = config.termsOfServiceUrl;
    return {
      json: {
        did: config.serviceDid,
        availableUserDomains: config.serviceHandleDomains,
        inviteCodeRequired: config.inviteRequired,
        phoneVerificationRequired: false,
        blobUploadLimit: config.blobUploadLimit,
        links,
        ...(config.contactEmailAddress ? { contact: { email: config.contactEmailAddress } } : {}),
      },
    };
  },
});
