/**
 * The PDS configuration, read from the reference PDS's environment names so an operator's
 * existing pds.env works unchanged. Sources, strongest first: the process environment, then
 * an optional `pds.env` file in the data directory, then built-in defaults (and the caller's
 * `defaults`, which `portage serve` uses for its laptop-friendly choices).
 *
 * Secrets left unset (JWT secret, admin password, PLC rotation key) are generated once and
 * kept in `<data dir>/secrets.json` (mode 0600), so restarts keep sessions and identities.
 * Any bad value stops start-up with a ConfigError naming the variable.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { AtprotoError } from '@portage/atproto/errors';

export class ConfigError extends AtprotoError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super('InvalidConfig', `${variable}: ${message}`);
    this.variable = variable;
  }
}

export interface PdsConfig {
  hostname: string;
  port: number;
  /** What DID documents and PLC operations name: https://HOSTNAME, or http://localhost:PORT. */
  publicUrl: string;
  serviceDid: string;
  serviceHandleDomains: string[];
  dataDirectory: string;
  accountDbPath: string;
  actorStoreDirectory: string;
  blobstoreDiskLocation: string;
  blobstoreDiskTmpLocation: string;
  /** PDS_BLOBSTORE_S3_*: blobs go to this bucket instead of the disk. */
  blobstoreS3: BlobstoreS3Config | undefined;
  /**
   * PORTAGE_BLOBSTORE_PREVIOUS (disk or s3): the store blobs are being moved out of by
   * `portage blobs move`; reads look there too until the move is done. With `s3`, the disk is
   * the current store even though the bucket is configured.
   */
  blobstorePrevious: 'disk' | 's3' | undefined;
  /** PORTAGE_BLOBSTORE_CDN_URL: getBlob answers a redirect to `<url>/blocks/<did>/<cid>`, the blob's key in the bucket. */
  blobstoreCdnUrl: string | undefined;
  /** PDS_REDIS_SCRATCH_ADDRESS (host:port or redis:// URL): rate limits and the identity cache shared there. */
  redisScratchAddress: string | undefined;
  redisScratchPassword: string | undefined;
  blobUploadLimit: number;
  maxRepoImportSize: number | undefined;
  /** Undefined when the caller should run the embedded PLC directory. */
  didPlcUrl: string | undefined;
  jwtSecret: string;
  adminPassword: string;
  plcRotationKeyHex: string;
  inviteRequired: boolean;
  /**
   * PDS_INVITE_INTERVAL (ms): with invites required, an account earns one invite code per
   * interval of its life (getAccountInviteCodes with createAvailable); unset: none are earned.
   */
  inviteInterval: number | undefined;
  /** PDS_INVITE_EPOCH (ms since 1970): earned codes count only from this moment on. */
  inviteEpoch: number;
  emailSmtpUrl: string | undefined;
  emailFromAddress: string;
  devMode: boolean;
  crawlers: string[];
  /** How far back a firehose cursor may reach (PDS_REPO_BACKFILL_LIMIT_MS; undefined: one day). */
  repoBackfillLimitMs: number | undefined;
  bskyAppViewUrl: string | undefined;
  bskyAppViewDid: string | undefined;
  /** How the AppView's CDN names images (%s: avatar|banner|feed_thumbnail|feed_fullsize, DID, CID), for read-after-write views. */
  bskyAppViewCdnUrlPattern: string | undefined;
  reportServiceUrl: string | undefined;
  reportServiceDid: string | undefined;
  /** The moderation service whose service JWTs the admin methods accept (PDS_MOD_SERVICE_DID). */
  modServiceDid: string | undefined;
  /** Where tools.ozone.* calls go without an atproto-proxy header (PDS_MOD_SERVICE_URL, with the DID). */
  modServiceUrl: string | undefined;
  /** How long a forwarded call may take to connect and answer with headers (PDS_PROXY_HEADERS_TIMEOUT, ms). */
  proxyHeadersTimeoutMs: number;
  /** How long a forwarded body may fall silent, either way (PDS_PROXY_BODY_TIMEOUT, ms). */
  proxyBodyTimeoutMs: number;
  rateLimitsEnabled: boolean;
  /** PORTAGE_METRICS_TOKEN: when set, /metrics answers only requests bearing it. */
  metricsToken: string | undefined;
  contactEmailAddress: string | undefined;
  privacyPolicyUrl: string | undefined;
  termsOfServiceUrl: string | undefined;
  version: string;
  logLevel: string;
  /** PORTAGE_BACKUP_DIRECTORY: where server backups go; unset, none are taken. */
  backupDirectory: string | undefined;
  /** PORTAGE_BACKUP_INTERVAL: time between server backups (default a day). */
  backupIntervalMs: number;
  /** PORTAGE_BACKUP_KEEP: how many backups are kept (default 7). */
  backupKeep: number;
  /** PORTAGE_BACKUP_TO_BUCKET: each backup is also copied to the blob bucket, under `backups/`. */
  backupToBucket: boolean;
  /** Which secrets were generated on this start (so `portage serve` can tell the operator). */
  generatedSecrets: string[];
  /** Where generated secrets live. */
  secretsPath: string;
}

export interface BlobstoreS3Config {
  bucket: string;
  region: string | undefined;
  endpoint: string | undefined;
  forcePathStyle: boolean | undefined;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  uploadTimeoutMs: number | undefined;
  requestTimeoutMs: number | undefined;
}

export type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SECRETS_FILE = 'secrets.json';
const DEFAULT_PORT = 2583;
const DEFAULT_BLOB_UPLOAD_LIMIT = 100 * 1024 * 1024;
// The reference's defaults for forwarded calls.
const DEFAULT_PROXY_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_PROXY_BODY_TIMEOUT_MS = 30_000;

function pairedService(urlName: string, url: string | undefined, didName: string, did: string | undefined): void {
  if (url !== undefined && did === undefined) throw new ConfigError(didName, `must be set when ${urlName} is`);
  if (did !== undefined && url === undefined) throw new ConfigError(urlName, `must be set when ${didName} is`);
}

/** The bucket settings, with the reference's rule that keys come in pairs. */
function s3Config(r: EnvReader): BlobstoreS3Config | undefined {
  const bucket = r.str('PDS_BLOBSTORE_S3_BUCKET');
  const accessKeyId = r.str('PDS_BLOBSTORE_S3_ACCESS_KEY_ID');
  const secretAccessKey = r.str('PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY');
  if (!bucket) return undefined;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      accessKeyId === undefined ? 'PDS_BLOBSTORE_S3_ACCESS_KEY_ID' : 'PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY',
      "the access key ID and the secret access key go together: set both, or neither to use the machine's AWS credentials",
    );
  }
  return {
    bucket,
    region: r.str('PDS_BLOBSTORE_S3_REGION'),
    endpoint: r.url('PDS_BLOBSTORE_S3_ENDPOINT'),
    forcePathStyle: r.bool('PDS_BLOBSTORE_S3_FORCE_PATH_STYLE'),
    accessKeyId,
    secretAccessKey,
    uploadTimeoutMs: r.int('PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS', { min: 1 }),
    requestTimeoutMs: r.int('PDS_BLOBSTORE_S3_REQUEST_TIMEOUT_MS', { min: 1 }),
  };
}

/** Parses `KEY=value` lines (comments, blank lines, optional quotes, `export ` prefix). */
export function parseEnvFile(text: string, source: string): Env {
  const out: Env = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new ConfigError(source, `line ${i + 1} is not KEY=value`);
    let value = match[2]!;
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.length >= 2 ? value.slice(1, -1) : value;
    }
    out[match[1]!] = value;
  });
  return out;
}

class EnvReader {
  readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }
  str(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }
  int(name: string, opts: { min?: number; max?: number } = {}): number | undefined {
    const value = this.str(name);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new ConfigError(name, `expected a whole number, got "${value}"`);
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new ConfigError(name, `number out of range: "${value}"`);
    if (opts.min !== undefined && n < opts.min) throw new ConfigError(name, `must be at least ${opts.min}`);
    if (opts.max !== undefined && n > opts.max) throw new ConfigError(name, `must be at most ${opts.max}`);
    return n;
  }
  bool(name: string): boolean | undefined {
    const value = this.str(name)?.toLowerCase();
    if (value === undefined) return undefined;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    throw new ConfigError(name, `expected true/false/1/0, got "${value}"`);
  }
  list(name: string): string[] | undefined {
    const value = this.str(name);
    if (value === undefined) return undefined;
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
  url(name: string): string | undefined {
    const value = this.str(name);
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(name, `not a URL: "${value}"`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError(name, `must be an http(s) URL, got "${value}"`);
    }
    return value.replace(/\/+$/, '');
  }
  did(name: string): string | undefined {
    const value = this.str(name);
    if (value === undefined) return undefined;
    if (!/^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/.test(value))
      throw new ConfigError(name, `not a DID: "${value}"`);
    return value;
  }
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

interface Secrets {
  jwtSecret?: string;
  adminPassword?: string;
  plcRotationKeyHex?: string;
}

export interface LoadConfigOptions {
  /** Values used when neither the environment nor pds.env sets a variable. */
  defaults?: Env;
  /** Directory relative data paths resolve against (default: process.cwd()). */
  cwd?: string;
}

/**
 * Reads and checks the configuration, creating the data directory (0700) and the secrets
 * file as needed. Throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: Env = process.env, opts: LoadConfigOptions = {}): PdsConfig {
  const cwd = opts.cwd ?? process.cwd();
  const defaults = opts.defaults ?? {};
  const first = new EnvReader({ ...defaults, ...env });
  const dataDirectory = resolve(cwd, first.str('PDS_DATA_DIRECTORY') ?? './data');
  mkdirSync(dataDirectory, { recursive: true, mode: 0o700 });

  // pds.env in the data directory fills in what the environment leaves unset.
  const envFilePath = join(dataDirectory, 'pds.env');
  const fileEnv = existsSync(envFilePath) ? parseEnvFile(readFileSync(envFilePath, 'utf8'), envFilePath) : {};
  const merged: Env = { ...defaults, ...fileEnv };
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') merged[k] = v;
  const r = new EnvReader(merged);

  const hostname = r.str('PDS_HOSTNAME') ?? 'localhost';
  if (!HOSTNAME_RE.test(hostname)) throw new ConfigError('PDS_HOSTNAME', `not a hostname: "${hostname}"`);
  const port = r.int('PDS_PORT', { min: 0, max: 65535 }) ?? DEFAULT_PORT;
  const publicUrl = hostname === 'localhost' ? `http://localhost:${port}` : `https://${hostname}`;
  const serviceDid = r.did('PDS_SERVICE_DID') ?? `did:web:${hostname}`;

  let serviceHandleDomains = r.list('PDS_SERVICE_HANDLE_DOMAINS');
  if (!serviceHandleDomains || serviceHandleDomains.length === 0) {
    serviceHandleDomains = hostname === 'localhost' ? ['.test'] : [`.${hostname}`];
  }
  serviceHandleDomains = serviceHandleDomains.map((d) => (d.startsWith('.') ? d : `.${d}`).toLowerCase());
  for (const domain of serviceHandleDomains) {
    if (!HOSTNAME_RE.test(domain.slice(1))) {
      throw new ConfigError('PDS_SERVICE_HANDLE_DOMAINS', `not a domain: "${domain}"`);
    }
  }

  const path = (name: string, fallback: string): string => {
    const value = r.str(name);
    return value === undefined ? fallback : isAbsolute(value) ? value : resolve(cwd, value);
  };
  const blobstoreDiskLocation = path('PDS_BLOBSTORE_DISK_LOCATION', join(dataDirectory, 'blocks'));
  const blobstoreS3 = s3Config(r);
  const previous = r.str('PORTAGE_BLOBSTORE_PREVIOUS')?.toLowerCase();
  if (previous !== undefined && previous !== 'disk' && previous !== 's3') {
    throw new ConfigError('PORTAGE_BLOBSTORE_PREVIOUS', `expected disk or s3, got "${previous}"`);
  }
  if (previous !== undefined && !blobstoreS3) {
    throw new ConfigError(
      'PORTAGE_BLOBSTORE_PREVIOUS',
      'moving blobs needs the bucket too: set PDS_BLOBSTORE_S3_BUCKET (and its other PDS_BLOBSTORE_S3_* settings)',
    );
  }
  const backupToBucket = r.bool('PORTAGE_BACKUP_TO_BUCKET') ?? false;
  if (backupToBucket && !blobstoreS3) {
    throw new ConfigError('PORTAGE_BACKUP_TO_BUCKET', 'backups go to the blob bucket: set PDS_BLOBSTORE_S3_BUCKET');
  }
  const blobstoreCdnUrl = r.url('PORTAGE_BLOBSTORE_CDN_URL')?.replace(/\/+$/, '');
  if (blobstoreCdnUrl && !blobstoreS3) {
    throw new ConfigError(
      'PORTAGE_BLOBSTORE_CDN_URL',
      'a CDN serves blobs from the bucket: set PDS_BLOBSTORE_S3_BUCKET',
    );
  }

  const logLevel = (r.str('LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}`);

  const emailSmtpUrl = r.str('PDS_EMAIL_SMTP_URL');
  if (emailSmtpUrl !== undefined && !/^smtps?:\/\//.test(emailSmtpUrl)) {
    throw new ConfigError('PDS_EMAIL_SMTP_URL', 'must start with smtp:// or smtps://');
  }

  // A service is named by both: the URL to reach it and the DID its service JWTs are addressed to.
  const bskyAppViewUrl = r.url('PDS_BSKY_APP_VIEW_URL');
  const bskyAppViewDid = r.did('PDS_BSKY_APP_VIEW_DID');
  pairedService('PDS_BSKY_APP_VIEW_URL', bskyAppViewUrl, 'PDS_BSKY_APP_VIEW_DID', bskyAppViewDid);
  const reportServiceUrl = r.url('PDS_REPORT_SERVICE_URL');
  const reportServiceDid = r.did('PDS_REPORT_SERVICE_DID');
  pairedService('PDS_REPORT_SERVICE_URL', reportServiceUrl, 'PDS_REPORT_SERVICE_DID', reportServiceDid);
  // The DID alone is enough to accept the moderation service's admin calls; its URL needs the DID.
  const modServiceUrl = r.url('PDS_MOD_SERVICE_URL');
  const modServiceDid = r.did('PDS_MOD_SERVICE_DID');
  if (modServiceUrl !== undefined && modServiceDid === undefined) {
    throw new ConfigError('PDS_MOD_SERVICE_DID', 'must be set when PDS_MOD_SERVICE_URL is');
  }

  const secretsPath = join(dataDirectory, SECRETS_FILE);
  const { secrets, generated } = resolveSecrets(r, secretsPath);

  return {
    hostname,
    port,
    publicUrl,
    serviceDid,
    serviceHandleDomains,
    dataDirectory,
    accountDbPath: path('PDS_ACCOUNT_DB_LOCATION', join(dataDirectory, 'account.sqlite')),
    actorStoreDirectory: path('PDS_ACTOR_STORE_DIRECTORY', join(dataDirectory, 'actors')),
    blobstoreDiskLocation,
    blobstoreDiskTmpLocation: path('PDS_BLOBSTORE_DISK_TMP_LOCATION', join(dataDirectory, 'tempblobs')),
    blobstoreS3,
    blobstorePrevious: previous as 'disk' | 's3' | undefined,
    blobstoreCdnUrl,
    redisScratchAddress: r.str('PDS_REDIS_SCRATCH_ADDRESS'),
    redisScratchPassword: r.str('PDS_REDIS_SCRATCH_PASSWORD'),
    blobUploadLimit: r.int('PDS_BLOB_UPLOAD_LIMIT', { min: 1 }) ?? DEFAULT_BLOB_UPLOAD_LIMIT,
    maxRepoImportSize: r.int('PDS_MAX_REPO_IMPORT_SIZE', { min: 1 }),
    didPlcUrl: r.url('PDS_DID_PLC_URL'),
    jwtSecret: secrets.jwtSecret!,
    adminPassword: secrets.adminPassword!,
    plcRotationKeyHex: secrets.plcRotationKeyHex!,
    inviteRequired: r.bool('PDS_INVITE_REQUIRED') ?? true,
    inviteInterval: r.int('PDS_INVITE_INTERVAL', { min: 1 }),
    inviteEpoch: r.int('PDS_INVITE_EPOCH', { min: 0 }) ?? 0,
    emailSmtpUrl,
    emailFromAddress: r.str('PDS_EMAIL_FROM_ADDRESS') ?? `noreply@${hostname}`,
    devMode: r.bool('PDS_DEV_MODE') ?? false,
    crawlers: r.list('PDS_CRAWLERS') ?? [],
    repoBackfillLimitMs: r.int('PDS_REPO_BACKFILL_LIMIT_MS', { min: 0 }),
    bskyAppViewUrl,
    bskyAppViewDid,
    bskyAppViewCdnUrlPattern: r.str('PDS_BSKY_APP_VIEW_CDN_URL_PATTERN'),
    reportServiceUrl,
    reportServiceDid,
    modServiceDid,
    modServiceUrl,
    proxyHeadersTimeoutMs: r.int('PDS_PROXY_HEADERS_TIMEOUT', { min: 1 }) ?? DEFAULT_PROXY_HEADERS_TIMEOUT_MS,
    proxyBodyTimeoutMs: r.int('PDS_PROXY_BODY_TIMEOUT', { min: 1 }) ?? DEFAULT_PROXY_BODY_TIMEOUT_MS,
    metricsToken: r.str('PORTAGE_METRICS_TOKEN'),
    backupDirectory: r.str('PORTAGE_BACKUP_DIRECTORY') && path('PORTAGE_BACKUP_DIRECTORY', ''),
    backupIntervalMs: duration(r, 'PORTAGE_BACKUP_INTERVAL') ?? 24 * 60 * 60 * 1000,
    backupKeep: r.int('PORTAGE_BACKUP_KEEP', { min: 1 }) ?? 7,
    backupToBucket,
    // On wherever the server has a public name; a laptop on localhost is left unlimited.
    rateLimitsEnabled: r.bool('PDS_RATE_LIMITS_ENABLED') ?? !isLocalHostname(hostname),
    contactEmailAddress: r.str('PDS_CONTACT_EMAIL_ADDRESS'),
    privacyPolicyUrl: r.url('PDS_PRIVACY_POLICY_URL'),
    termsOfServiceUrl: r.url('PDS_TERMS_OF_SERVICE_URL'),
    version: r.str('PDS_VERSION') ?? '0.1.0',
    logLevel,
    generatedSecrets: generated,
    secretsPath,
  };
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration such as `30m`, `6h` or `1d` (s, m, h, d), in milliseconds. */
function duration(r: EnvReader, name: string): number | undefined {
  const value = r.str(name);
  if (value === undefined) return undefined;
  const match = /^(\d+)\s*([smhd])$/.exec(value);
  const ms = match ? Number(match[1]) * DURATION_UNITS[match[2]!]! : 0;
  if (!(ms > 0)) throw new ConfigError(name, `expected a duration such as 30m, 6h or 1d, got "${value}"`);
  return ms;
}

/** Secrets from the environment win; otherwise the persisted ones; otherwise new ones. */
function resolveSecrets(r: EnvReader, secretsPath: string): { secrets: Secrets; generated: string[] } {
  let stored: Secrets = {};
  if (existsSync(secretsPath)) {
    try {
      stored = JSON.parse(readFileSync(secretsPath, 'utf8')) as Secrets;
    } catch {
      throw new ConfigError(secretsPath, 'the secrets file is not valid JSON; fix or remove it');
    }
  }
  const generated: string[] = [];
  const pick = (name: string, key: keyof Secrets, make: () => string): string => {
    const fromEnv = r.str(name);
    if (fromEnv !== undefined) return fromEnv;
    const existing = stored[key];
    if (typeof existing === 'string' && existing !== '') return existing;
    const value = make();
    stored[key] = value;
    generated.push(name);
    return value;
  };
  const secrets: Secrets = {
    jwtSecret: pick('PDS_JWT_SECRET', 'jwtSecret', () => randomBytes(16).toString('hex')),
    adminPassword: pick('PDS_ADMIN_PASSWORD', 'adminPassword', () => randomBytes(16).toString('hex')),
    plcRotationKeyHex: pick('PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX', 'plcRotationKeyHex', () =>
      randomBytes(32).toString('hex'),
    ),
  };
  if (!/^[0-9a-fA-F]{64}$/.test(secrets.plcRotationKeyHex!)) {
    throw new ConfigError(
      'PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX',
      'expected 64 hex characters (a secp256k1 private key)',
    );
  }
  if (generated.length > 0) {
    writeFileSync(secretsPath, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });
    chmodSync(secretsPath, 0o600);
  }
  return { secrets, generated };
}

/** Names that only this machine (or a development network) reaches. */
function isLocalHostname(hostname: string): boolean {
  return hostname === 'localhost' || /\.(localhost|test|local|internal)$/.test(hostname) || /^127\./.test(hostname);
}
