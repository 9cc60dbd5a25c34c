import { ComAtprotoServerDescribeServer } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** What a client needs before signing up: our DID, handle domains, whether invites are needed. */
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
        links,
        ...(config.contactEmailAddress ? { contact: { email: config.contactEmailAddress } } : {}),
      },
    };
  },
});
