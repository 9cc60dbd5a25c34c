/**
 * AppContext: every long-lived service of one PDS instance, constructed here and nowhere
 * else, so tests can build a whole server from a config and close it cleanly. Endpoints reach
 * services through `c.ctx`; services receive what they need through their constructors.
 */
import { join } from 'node:path';
import { type ExportableSigningKey, importSigningKey } from '@portage/atproto/crypto';
import { getAtprotoSigningKey } from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { nodeResolveTxt } from '@portage/atproto/identity/dns.node';
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { PlcClient } from '@portage/atproto/plc/client';
import { AccountManager } from './account/account-manager.ts';
import { AccountEmailFlows } from './account/email-flows.ts';
import { ActorStore } from './actor-store/actor-store.ts';
import { jwtKeyFromSecret, TokenIssuer } from './auth/tokens.ts';
import { AuthVerifier } from './auth/verifier.ts';
import type { BlobStore } from './blobstore/blobstore.ts';
import { createBlobStore } from './blobstore/create.ts';
import type { PdsConfig } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { Mailer } from './mailer/mailer.ts';
import { Metrics } from './metrics/metrics.ts';
import { MigrationService } from './migration/service.ts';
import { OAuthServer } from './oauth/server.ts';
import { ServiceProxy } from './proxy/service-proxy.ts';
import { type RateLimitPolicies, RateLimiter } from './rate-limit/rate-limiter.ts';
import { RedisWindowCounters } from './rate-limit/redis-counters.ts';
import { RedisScratch } from './redis/scratch.ts';
import { FirehoseService } from './sequencer/firehose-service.ts';
import type { Sequencer } from './sequencer/sequencer.ts';

export interface AppContextOptions {
  /** Defaults to a pino logger at config.logLevel writing to stdout. */
  logger?: Logger;
  /** TXT lookups for handle resolution (default node:dns); tests inject a fake. */
  resolveTxt?: (name: string) => Promise<string[]>;
  /** fetch used for PLC, DID and handle resolution (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Limits to apply instead of the reference's when rate limits are on (tests use small ones). */
  rateLimits?: Partial<RateLimitPolicies>;
}

export class AppContext {
  readonly config: PdsConfig;
  readonly logger: Logger;
  readonly authVerifier: AuthVerifier;
  readonly tokens: TokenIssuer;
  readonly accountManager: AccountManager;
  readonly actorStore: ActorStore;
  readonly blobstore: BlobStore;
  readonly plcClient: PlcClient;
  /** The key this PDS signs PLC operations with for its accounts. */
  readonly plcRotationKey: ExportableSigningKey;
  readonly didResolver: DidResolver;
  readonly handleResolver: HandleResolver;
  readonly mailer: Mailer;
  /** Accounts moving in and out (import, PLC credentials, activation). */
  readonly migration: MigrationService;
  /** Confirming and changing the email address, resetting a forgotten password. */
  readonly emailFlows: AccountEmailFlows;
  /** The event log (every commit is sequenced in its write transaction) and subscribeRepos. */
  readonly firehose: FirehoseService;
  /** The firehose's event log; account and identity changes are sequenced through it. */
  readonly sequencer: Sequencer;
  /** Request rate limits; undefined when off (PDS_RATE_LIMITS_ENABLED=false, or a local hostname). */
  readonly rateLimiter: RateLimiter | undefined;
  /** The scratch Redis (PDS_REDIS_SCRATCH_ADDRESS), when configured. */
  readonly redis: RedisScratch | undefined;
  /** Forwarding of the methods this server does not serve (AppView, atproto-proxy). */
  readonly proxy: ServiceProxy;
  /** The figures `/metrics` serves. */
  readonly metrics: Metrics;
  /** The OAuth authorization server (oauth/), whose DPoP tokens the auth verifier also checks. */
  readonly oauth: OAuthServer;
  #streamsClosed = false;

  private constructor(fields: {
    config: PdsConfig;
    logger: Logger;
    authVerifier: AuthVerifier;
    tokens: TokenIssuer;
    accountManager: AccountManager;
    actorStore: ActorStore;
    blobstore: BlobStore;
    plcClient: PlcClient;
    plcRotationKey: ExportableSigningKey;
    didResolver: DidResolver;
    handleResolver: HandleResolver;
    mailer: Mailer;
    firehose: FirehoseService;
    rateLimiter: RateLimiter | undefined;
    oauth: OAuthServer;
    redis: RedisScratch | undefined;
    sharedRateLimits: () => boolean | undefined;
  }) {
    this.config = fields.config;
    this.logger = fields.logger;
    this.authVerifier = fields.authVerifier;
    this.tokens = fields.tokens;
    this.accountManager = fields.accountManager;
    this.actorStore = fields.actorStore;
    this.blobstore = fields.blobstore;
    this.plcClient = fields.plcClient;
    this.plcRotationKey = fields.plcRotationKey;
    this.didResolver = fields.didResolver;
    this.handleResolver = fields.handleResolver;
    this.mailer = fields.mailer;
    this.firehose = fields.firehose;
    this.sequencer = fields.firehose.sequencer;
    this.rateLimiter = fields.rateLimiter;
    this.oauth = fields.oauth;
    this.redis = fields.redis;
    this.migration = new MigrationService(this);
    this.emailFlows = new AccountEmailFlows(this.accountManager, this.mailer);
    this.metrics = new Metrics({
      firehoseSubscribers: () => this.firehose.firehose.subscriberCount,
      lastSeq: () => this.sequencer.lastSeq(),
      accountsByStatus: () => this.accountManager.countAccountsByStatus(),
      databaseFiles: () => ({ account: this.config.accountDbPath, sequencer: this.sequencer.db.name }),
      folders: () => ({ actorStores: this.config.actorStoreDirectory }),
      blobBytes: () => this.blobstore.storedBytes(),
      sharedRateLimits: fields.sharedRateLimits,
    });
    this.proxy = new ServiceProxy(this);
  }

  static async create(config: PdsConfig, opts: AppContextOptions = {}): Promise<AppContext> {
    if (!config.didPlcUrl) {
      throw new Error('PDS_DID_PLC_URL must be set (portage serve starts an embedded PLC directory and sets it)');
    }
    const logger = opts.logger ?? createLogger(config.logLevel);
    const fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const jwtKey = jwtKeyFromSecret(config.jwtSecret);
    const tokens = new TokenIssuer(jwtKey, config.serviceDid);
    const redis = config.redisScratchAddress
      ? new RedisScratch(config.redisScratchAddress, config.redisScratchPassword)
      : undefined;
    const didResolver = new DidResolver({
      plcUrl: config.didPlcUrl,
      fetch: fetchImpl,
      sharedCache: redis?.namespace('portage:did:'),
    });
    const authVerifier = new AuthVerifier({
      jwtKey,
      serviceDid: config.serviceDid,
      adminPassword: config.adminPassword,
      modServiceDid: config.modServiceDid,
      resolveSigningKey: async (did, forceRefresh) =>
        getAtprotoSigningKey(await didResolver.resolve(did, { noCache: forceRefresh })),
    });
    const blobstore = createBlobStore(config);
    const actorStore = new ActorStore({ directory: config.actorStoreDirectory, blobstore });
    const accountManager = new AccountManager({ dbPath: config.accountDbPath, tokens, hostname: config.hostname });
    const firehose = new FirehoseService({
      dataDirectory: config.dataDirectory,
      hostname: config.hostname,
      crawlers: config.crawlers,
      backfillWindowMs: config.repoBackfillLimitMs,
      openActorDb: (did) => actorStore.database(did),
      accountDb: accountManager.db,
      fetch: fetchImpl,
      logger,
    });
    const oauth = await OAuthServer.create(config, accountManager);
    authVerifier.useOAuth(oauth.provider, config.publicUrl);
    actorStore.onCommit(firehose.onCommit);
    const redisCounters = redis && config.rateLimitsEnabled ? new RedisWindowCounters(redis, logger) : undefined;
    accountManager.sequenceEventsThrough(firehose.sequencer, firehose.accountHost(accountManager.db));
    return new AppContext({
      config,
      logger,
      authVerifier,
      tokens,
      accountManager,
      actorStore,
      blobstore,
      plcClient: new PlcClient(config.didPlcUrl, fetchImpl),
      plcRotationKey: await importSigningKey(config.plcRotationKeyHex, 'secp256k1'),
      didResolver,
      handleResolver: new HandleResolver({ resolveTxt: opts.resolveTxt ?? nodeResolveTxt, fetch: fetchImpl }),
      mailer: new Mailer({
        smtpUrl: config.emailSmtpUrl,
        from: config.emailFromAddress,
        outboxPath: join(config.dataDirectory, 'outbox.jsonl'),
        logger,
      }),
      firehose,
      rateLimiter: config.rateLimitsEnabled ? new RateLimiter(opts.rateLimits, redisCounters) : undefined,
      oauth,
      redis,
      sharedRateLimits: () => redisCounters?.shared,
    });
  }

  /**
   * Ends long-lived streams (firehose subscribers) so the HTTP server can finish closing.
   * Called by close(); safe to call first and more than once.
   */
  closeStreams(): void {
    if (this.#streamsClosed) return;
    this.#streamsClosed = true;
    this.firehose.close();
  }

  /** Releases databases and connections. Call after the HTTP server has stopped. */
  async close(): Promise<void> {
    this.closeStreams();
    this.mailer.close();
    this.proxy.close();
    this.oauth.close();
    this.actorStore.close();
    this.accountManager.close();
    await this.blobstore.close?.();
    await this.redis?.close();
  }
}
