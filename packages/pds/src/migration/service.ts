/**
 * Accounts moving in and out: what the migration endpoints share. One instance per server,
 * built by the app context.
 *
 * Moving in (we are the new PDS): the account was created deactivated with a fresh signing
 * key (createAccount with a service JWT); importRepo fills its repository; blobs follow
 * (listMissingBlobs tells what is left); getRecommendedDidCredentials names what the PLC
 * operation must contain; submitPlcOperation checks and relays that operation; activation
 * checks that the DID document really points here, re-signs the head commit with our key
 * under a new rev, and announces the account (#identity, #account, #sync).
 *
 * Moving out (we are the old PDS): requestPlcOperationSignature mails a one-time token;
 * signPlcOperation spends it to sign the user's PLC operation with our rotation key;
 * deactivateAccount retires the account here while its owner can still read it.
 */
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { formatCid } from '@portage/atproto/cid';
import {
  type DidDocument,
  getAtprotoSigningKey,
  getPdsEndpoint,
  sameServiceUrl,
} from '@portage/atproto/identity/did-document';
import { PlcError } from '@portage/atproto/plc/client';
import {
  type AnyPlcOperation,
  type PlcOperation,
  type PlcService,
  parsePlcOperation,
  updateOperation,
} from '@portage/atproto/plc/operations';
import { tokenMail } from '../mailer/templates.ts';
import { withRepoErrors } from '../actor-store/xrpc-errors.ts';
import type { AppContext } from '../context.ts';
import { submitToPlc } from '../identity/plc-identity.ts';
import { InvalidRequest, UpstreamFailure, XrpcError } from '../xrpc/errors.ts';
import { sequencerOf } from './events.ts';
import { clearStagingDirectory } from './staging-store.ts';
import { type ImportSummary, importRepository, stagingDirectoryFor } from './repo-import.ts';

export interface RecommendedDidCredentials {
  rotationKeys: string[];
  alsoKnownAs: string[];
  verificationMethods: Record<string, string>;
  services: Record<string, PlcService>;
}

export interface PlcOperationChanges {
  rotationKeys?: string[];
  alsoKnownAs?: string[];
  verificationMethods?: Record<string, string>;
  services?: Record<string, PlcService>;
}

/**
 * How old a DID document accountStatus accepts from the resolver's cache: a migration tool asks
 * for the status several times within seconds (the first time just after createAccount resolved
 * the DID to check the service JWT), and each fresh read is a round trip to the directory.
 * Activation always reads afresh, and every PLC operation sent (submitToPlc) drops the cached document.
 */
const STATUS_DOCUMENT_MAX_AGE_MS = 5_000;

const PDS_SERVICE_ID = 'atproto_pds';
const PDS_SERVICE_TYPE = 'AtprotoPersonalDataServer';

export class MigrationService {
  readonly #ctx: AppContext;

  constructor(ctx: AppContext) {
    this.#ctx = ctx;
    // Staging files of imports a crash interrupted are useless now.
    clearStagingDirectory(stagingDirectoryFor(ctx.config.dataDirectory));
  }

  // ---- moving in -------------------------------------------------------------------------

  /** Verifies and imports a repository CAR into a deactivated account. */
  async importRepo(did: string, body: AsyncIterable<Uint8Array>): Promise<ImportSummary> {
    const account = this.#account(did);
    if (!account.deactivatedAt) {
      // Replacing a live repository would rewind what relays already have; a migration
      // imports into the deactivated account createAccount made.
      throw InvalidRequest(
        'importRepo replaces the whole repository and is only accepted while the account is deactivated',
      );
    }
    const ctx = this.#ctx;
    return importRepository(
      {
        didResolver: ctx.didResolver,
        plcClient: ctx.plcClient,
        actorStore: ctx.actorStore,
        stagingDirectory: stagingDirectoryFor(ctx.config.dataDirectory),
      },
      did,
      body,
    );
  }

  async listMissingBlobs(did: string, opts: { limit: number; cursor?: string }) {
    return withRepoErrors(async () => {
      await this.#ctx.actorStore.promoteReferencedBlobs(did);
      return this.#ctx.actorStore.listMissingBlobs(did, opts);
    });
  }

  /** Everything a migration tool needs to decide whether the account is complete here. */
  async accountStatus(did: string): Promise<AccountStatus> {
    const account = this.#account(did);
    const counts = await withRepoErrors(async () => {
      await this.#ctx.actorStore.promoteReferencedBlobs(did);
      return this.#ctx.actorStore.repoStatusCounts(did);
    });
    return {
      activated: account.deactivatedAt === null,
      validDid: (await this.#didDocumentProblem(did, { reuseRecent: true })) === undefined,
      repoCommit: formatCid(counts.root.cid),
      repoRev: counts.root.rev,
      repoBlocks: counts.blocks,
      indexedRecords: counts.records,
      privateStateValues: this.#ctx.accountManager.countPreferences(did),
      expectedBlobs: counts.expectedBlobs,
      importedBlobs: counts.importedBlobs,
    };
  }

  /** What the DID's PLC operation must say for the account to live here. */
  async recommendedDidCredentials(did: string): Promise<RecommendedDidCredentials> {
    const account = this.#account(did);
    const signingKey = await this.#ctx.actorStore.getSigningKey(did);
    return {
      rotationKeys: [this.#ctx.plcRotationKey.did()],
      alsoKnownAs: account.handle ? [`at://${account.handle}`] : [],
      verificationMethods: { atproto: signingKey.did() },
      services: { [PDS_SERVICE_ID]: { type: PDS_SERVICE_TYPE, endpoint: this.#ctx.config.publicUrl } },
    };
  }

  /**
   * Relays a PLC operation the old PDS signed, after checking it keeps the account working
   * here: our rotation key, our endpoint, the account's signing key here and its handle.
   */
  async submitPlcOperation(did: string, input: unknown): Promise<void> {
    const account = this.#account(did);
    let op: AnyPlcOperation;
    try {
      op = parsePlcOperation(input);
    } catch (err) {
      throw InvalidRequest(`Invalid PLC operation: ${(err as Error).message}`);
    }
    if (op.type !== 'plc_operation') throw InvalidRequest('Only a plc_operation can be submitted, not a tombstone');
    const expected = await this.recommendedDidCredentials(did);
    if (!op.rotationKeys.includes(this.#ctx.plcRotationKey.did())) {
      throw InvalidRequest("Rotation keys do not include server's rotation key");
    }
    const service = op.services[PDS_SERVICE_ID];
    if (service?.type !== PDS_SERVICE_TYPE) throw InvalidRequest('Missing or incorrect atproto_pds service type');
    if (!sameServiceUrl(service.endpoint, this.#ctx.config.publicUrl)) {
      throw InvalidRequest(`Incorrect endpoint on atproto_pds service (expected ${this.#ctx.config.publicUrl})`);
    }
    if (op.verificationMethods.atproto !== expected.verificationMethods.atproto) {
      throw InvalidRequest('Incorrect signing key: use the one getRecommendedDidCredentials offers');
    }
    if (account.handle && op.alsoKnownAs[0] !== `at://${account.handle}`) {
      throw InvalidRequest(`Incorrect handle in alsoKnownAs (expected at://${account.handle} first)`);
    }
    await submitToPlc(this.#ctx, did, op);
    sequencerOf(this.#ctx)?.sequenceIdentity(null, { did, handle: account.handle ?? undefined });
  }

  /**
   * Activates an account that moved in. Refuses, naming the check, unless the DID document
   * names our endpoint and the account's signing key here, and (did:plc) our rotation key is
   * among the DID's rotation keys. Then re-signs the head commit with our key (new rev), so
   * relays verifying the #sync see a commit signed by the key the DID now names.
   */
  async activateAccount(did: string): Promise<void> {
    const account = this.#account(did);
    if (account.deactivatedAt === null) return;
    // Both reads at once (two round trips to the directory otherwise); the document's problem,
    // if any, is the one reported.
    const [problem, data] = await Promise.allSettled([
      this.#didDocumentProblem(did),
      did.startsWith('did:plc:') ? this.#ctx.plcClient.getDocumentData(did) : Promise.resolve(undefined),
    ]);
    if (problem.status === 'rejected') throw problem.reason;
    if (problem.value) throw InvalidRequest(problem.value, 'InvalidDidDocument');
    if (data.status === 'rejected') throw plcUnavailable(data.reason, did);
    if (data.value && !data.value.rotationKeys.includes(this.#ctx.plcRotationKey.did())) {
      throw InvalidRequest(
        "The DID's PLC rotation keys do not include this server's rotation key",
        'InvalidDidDocument',
      );
    }
    // Makes the head commit ours: same tree, signed with the account's key here, under a rev
    // greater than every earlier one (a head already signed by our key is kept as it is).
    const head = await withRepoErrors(async () => {
      await this.#ctx.actorStore.promoteReferencedBlobs(did);
      return this.#ctx.actorStore.resignHead(did);
    });
    // Activation and its #identity, #account and #sync events commit in one transaction.
    this.#ctx.accountManager.activateAccount(did, { commit: head.cid, commitBytes: head.bytes, rev: head.rev });
  }

  // ---- moving out ------------------------------------------------------------------------

  /** Mails a one-time token that signPlcOperation will ask for. */
  async requestPlcOperationSignature(did: string): Promise<void> {
    const account = this.#account(did);
    if (!account.email) throw InvalidRequest('account does not have an email address');
    const token = this.#ctx.accountManager.createEmailToken(did, 'plc_operation');
    await this.#ctx.mailer.send(tokenMail('plc_operation', account.email, { handle: account.handle ?? did, token }));
  }

  /** Spends the emailed token and signs the DID's next PLC operation with our rotation key. */
  async signPlcOperation(did: string, token: string, changes: PlcOperationChanges): Promise<PlcOperation> {
    this.#account(did);
    this.#ctx.accountManager.consumeEmailToken(did, 'plc_operation', token);
    const audit = await this.#ctx.plcClient.getAuditLog(did).catch((err: unknown) => {
      throw plcUnavailable(err, did);
    });
    const last = audit.filter((e) => !e.nullified).at(-1);
    if (!last || last.operation.type === 'plc_tombstone') {
      throw InvalidRequest(`The PLC directory has no live operation for ${did}`);
    }
    try {
      return await updateOperation(last.operation, last.cid, changes, this.#ctx.plcRotationKey);
    } catch (err) {
      if (err instanceof PlcError) throw InvalidRequest(`The requested operation is not valid: ${err.message}`);
      throw err;
    }
  }

  async deactivateAccount(did: string, deleteAfter: string | null): Promise<void> {
    this.#account(did);
    this.#ctx.accountManager.deactivateAccount(did, deleteAfter); // with its #account event
  }

  // ---- shared ----------------------------------------------------------------------------

  #account(did: string) {
    const account = this.#ctx.accountManager.getAccount(did);
    if (!account) throw InvalidRequest(`Account not found: ${did}`, 'AccountNotFound');
    return account;
  }

  /**
   * Why the DID document does not (yet) point at this account here, or undefined when it does.
   * `reuseRecent`: a document read in the last few seconds will do (status reports only).
   */
  async #didDocumentProblem(did: string, opts: { reuseRecent?: boolean } = {}): Promise<string | undefined> {
    let doc: DidDocument;
    try {
      doc = await this.#ctx.didResolver.resolve(
        did,
        opts.reuseRecent ? { maxAgeMs: STATUS_DOCUMENT_MAX_AGE_MS } : { noCache: true },
      );
    } catch (err) {
      return `Could not resolve the DID document of ${did}: ${(err as Error).message}`;
    }
    const endpoint = getPdsEndpoint(doc);
    if (!sameServiceUrl(endpoint, this.#ctx.config.publicUrl)) {
      return `DID document atproto_pds service endpoint is ${endpoint ?? 'missing'}, not this server (${this.#ctx.config.publicUrl})`;
    }
    const signingKey = (await this.#ctx.actorStore.getSigningKey(did)).did();
    if (getAtprotoSigningKey(doc) !== signingKey) {
      return "DID document signing key (#atproto) does not match the account's signing key on this server";
    }
    return undefined;
  }
}

function plcUnavailable(err: unknown, did: string): XrpcError {
  if (err instanceof XrpcError) return err;
  if (err instanceof PlcError && err.code === 'NotFound') return InvalidRequest(`${did} is not in the PLC directory`);
  return UpstreamFailure(`The PLC directory could not be reached: ${(err as Error).message}`);
}
