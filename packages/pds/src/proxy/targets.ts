/**
 * Where a forwarded call goes. With an `atproto-proxy: <did>#<service id>` header, the
 * service entry of that DID's document names the endpoint, and the service JWT is addressed
 * to the DID. Without it, as the reference PDS does: createReport goes to the report service,
 * tools.ozone.* to the moderation service, and everything else (chat.bsky.* too: the apps name
 * the chat service in a header) to the configured AppView.
 */
import { IdentityError } from '@portage/atproto/identity/errors';
import { isValidDid } from '@portage/atproto/syntax/did';
import type { PdsConfig } from '../config.ts';
import { InvalidRequest, MethodNotImplemented, UpstreamFailure, type XrpcError } from '../xrpc/errors.ts';

export interface ServiceTarget {
  /** The audience of the service JWT. */
  did: string;
  serviceId: string;
  /** The service's origin (scheme, host, port). */
  origin: string;
  /** Named by the operator's configuration rather than a caller: not subject to the address policy. */
  configured: boolean;
}

export const REPORT_METHOD = 'com.atproto.moderation.createReport';

/** The service a call without an atproto-proxy header goes to. */
export function defaultTarget(config: PdsConfig, nsid: string): ServiceTarget {
  if (nsid === REPORT_METHOD) {
    if (!config.reportServiceUrl || !config.reportServiceDid) {
      throw MethodNotImplemented(
        `${nsid} goes to a moderation service and none is configured: set PDS_REPORT_SERVICE_URL and ` +
          'PDS_REPORT_SERVICE_DID, or name one in an atproto-proxy header',
      );
    }
    return configured(config.reportServiceDid, 'atproto_labeler', config.reportServiceUrl);
  }
  if (nsid.startsWith('tools.ozone.')) {
    if (!config.modServiceUrl || !config.modServiceDid) {
      throw MethodNotImplemented(
        `${nsid} goes to a moderation service and none is configured: set PDS_MOD_SERVICE_URL and ` +
          'PDS_MOD_SERVICE_DID, or name one in an atproto-proxy header',
      );
    }
    return configured(config.modServiceDid, 'atproto_labeler', config.modServiceUrl);
  }
  if (!config.bskyAppViewUrl || !config.bskyAppViewDid) {
    if (!nsid.startsWith('app.bsky.')) throw MethodNotImplemented();
    throw MethodNotImplemented(
      `${nsid} is answered by an AppView and none is configured: set PDS_BSKY_APP_VIEW_URL and ` +
        "PDS_BSKY_APP_VIEW_DID (Bluesky's: https://api.bsky.app and did:web:api.bsky.app)",
    );
  }
  return configured(config.bskyAppViewDid, 'bsky_appview', config.bskyAppViewUrl);
}

function configured(did: string, serviceId: string, url: string): ServiceTarget {
  return { did, serviceId, origin: new URL(url).origin, configured: true };
}

/** Splits and checks an atproto-proxy header value; throws 400 naming the problem. */
export function parseProxyHeader(value: string): { did: string; serviceId: string } {
  const hash = value.indexOf('#');
  if (hash === 0) throw InvalidRequest('no did specified in atproto-proxy header');
  if (hash === -1 || hash === value.length - 1) {
    throw InvalidRequest('no service id specified in atproto-proxy header (expected "<did>#<service id>")');
  }
  if (value.indexOf('#', hash + 1) !== -1)
    throw InvalidRequest('invalid atproto-proxy header format (more than one "#")');
  if (/\s/.test(value)) throw InvalidRequest('atproto-proxy header cannot contain spaces');
  const did = value.slice(0, hash);
  const serviceId = value.slice(hash + 1);
  if (!isValidDid(did)) throw InvalidRequest(`atproto-proxy header names an invalid DID: "${did}"`);
  if (!/^[a-zA-Z0-9._~-]+$/.test(serviceId)) {
    throw InvalidRequest(`atproto-proxy header names an invalid service id: "${serviceId}"`);
  }
  return { did, serviceId };
}

/** A DID document resolution failure as the caller should see it. */
export function resolutionFailure(did: string, err: unknown): XrpcError {
  if (err instanceof IdentityError && err.code === 'DidResolutionUnavailable') {
    return UpstreamFailure(`could not resolve proxy did ${did}: ${err.message}`);
  }
  const detail = err instanceof Error ? err.message : String(err);
  return InvalidRequest(`could not resolve proxy did ${did}: ${detail}`);
}
