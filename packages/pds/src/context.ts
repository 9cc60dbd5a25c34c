/**
 * AppContext: every long-lived service of one PDS instance, constructed here and nowhere
 * else, so tests can build a whole server from a config and close it cleanly. Endpoints reach
 * services through `c.ctx`; services receive what they need through their constructors.
 */
import { AuthVerifier } from './auth/verifier.ts';
import { jwtKeyFromSecret, TokenIssuer } from './auth/tokens.ts';
import type { PdsConfig } from './config.ts';
import { createLogger, type Logger } from './logger.ts';

export interface AppContextOptions {
  /** Defaults to a pino logger at config.logLevel writing to stdout. */
  logger?: Logger;
}

export class AppContext {
  readonly config: PdsConfig;
  readonly logger: Logger;
  readonly authVerifier: AuthVerifier;
  readonly tokens: TokenIssuer;

  private constructor(config: PdsConfig, logger: Logger, authVerifier: AuthVerifier, tokens: TokenIssuer) {
    this.config = config;
    this.logger = logger;
    this.authVerifier = authVerifier;
    this.tokens = tokens;
  }

  static async create(config: PdsConfig, opts: AppContextOptions = {}): Promise<AppContext> {
    const logger = opts.logger ?? createLogger(config.logLevel);
    const jwtKey = jwtKeyFromSecret(config.jwtSecret);
    const authVerifier = new AuthVerifier({
      jwtKey,
      serviceDid: config.serviceDid,
      adminPassword: config.adminPassword,
    });
    const tokens = new TokenIssuer(jwtKey, config.serviceDid);
    return new AppContext(config, logger, authVerifier, tokens);
  }

  /** Releases databases and timers. Safe to call once the HTTP server has stopped. */
  async close(): Promise<void> {}
}
