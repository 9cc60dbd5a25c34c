import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('config', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portage-config-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => mkdtempSync(join(dir, 'd-'));

  it('uses the reference defaults for localhost', () => {
    const c = loadConfig({ PDS_DATA_DIRECTORY: fresh() });
    assert.equal(c.publicUrl, 'http://localhost:2583');
    assert.equal(c.serviceDid, 'did:web:localhost');
    assert.deepEqual(c.serviceHandleDomains, ['.test']);
    assert.equal(c.inviteRequired, true);
  });

  it('uses https://HOSTNAME and .HOSTNAME handles for a real hostname', () => {
    const c = loadConfig({ PDS_DATA_DIRECTORY: fresh(), PDS_HOSTNAME: 'pds.example.com', PDS_PORT: '3000' });
    assert.equal(c.publicUrl, 'https://pds.example.com');
    assert.equal(c.port, 3000);
    assert.deepEqual(c.serviceHandleDomains, ['.pds.example.com']);
  });

  it('turns the rate limits on for a public name, off for localhost, unless told otherwise', () => {
    const on = (env: Record<string, string>) => loadConfig({ PDS_DATA_DIRECTORY: fresh(), ...env }).rateLimitsEnabled;
    assert.equal(on({ PDS_HOSTNAME: 'pds.example.com' }), true);
    assert.equal(on({ PDS_HOSTNAME: 'localhost' }), false);
    assert.equal(on({ PDS_HOSTNAME: 'pds.test' }), false);
    assert.equal(on({ PDS_HOSTNAME: 'pds.example.com', PDS_RATE_LIMITS_ENABLED: 'false' }), false);
    assert.equal(on({ PDS_HOSTNAME: 'localhost', PDS_RATE_LIMITS_ENABLED: 'true' }), true);
  });

  it('generates secrets once, persists them 0600, and reuses them', () => {
    const data = fresh();
    const a = loadConfig({ PDS_DATA_DIRECTORY: data });
    assert.deepEqual(a.generatedSecrets.sort(), [
      'PDS_ADMIN_PASSWORD',
      'PDS_JWT_SECRET',
      'PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX',
    ]);
    assert.equal(statSync(a.secretsPath).mode & 0o777, 0o600);
    const b = loadConfig({ PDS_DATA_DIRECTORY: data });
    assert.deepEqual(b.generatedSecrets, []);
    assert.equal(b.jwtSecret, a.jwtSecret);
    assert.equal(b.adminPassword, a.adminPassword);
    assert.equal(b.plcRotationKeyHex, a.plcRotationKeyHex);
    assert.match(readFileSync(a.secretsPath, 'utf8'), /adminPassword/);
  });

  it('reads pds.env from the data directory, with the environment taking precedence', () => {
    const data = fresh();
    writeFileSync(
      join(data, 'pds.env'),
      '# operator file\nPDS_HOSTNAME=pds.example.org\nPDS_ADMIN_PASSWORD="from-file"\nexport PDS_INVITE_REQUIRED=false\n',
    );
    const c = loadConfig({ PDS_DATA_DIRECTORY: data, PDS_ADMIN_PASSWORD: 'from-env' });
    assert.equal(c.hostname, 'pds.example.org');
    assert.equal(c.adminPassword, 'from-env');
    assert.equal(c.inviteRequired, false);
  });

  it('reads the backup settings: a folder, an interval such as 6h or 30m, how many to keep', () => {
    const off = loadConfig({ PDS_DATA_DIRECTORY: fresh() });
    assert.equal(off.backupDirectory, undefined);
    assert.equal(off.backupIntervalMs, 24 * 60 * 60 * 1000);
    assert.equal(off.backupKeep, 7);
    const on = loadConfig({
      PDS_DATA_DIRECTORY: fresh(),
      PORTAGE_BACKUP_DIRECTORY: '/var/backups/portage',
      PORTAGE_BACKUP_INTERVAL: '30m',
      PORTAGE_BACKUP_KEEP: '3',
    });
    assert.equal(on.backupDirectory, '/var/backups/portage');
    assert.equal(on.backupIntervalMs, 30 * 60 * 1000);
    assert.equal(on.backupKeep, 3);
    assert.equal(
      loadConfig({ PDS_DATA_DIRECTORY: fresh(), PORTAGE_BACKUP_INTERVAL: '6h' }).backupIntervalMs,
      6 * 3600_000,
    );
  });

  it('reads the bucket, the CDN, the store blobs move out of, and Redis', () => {
    const config = loadConfig({
      PDS_DATA_DIRECTORY: fresh(),
      PDS_BLOBSTORE_S3_BUCKET: 'blobs',
      PDS_BLOBSTORE_S3_REGION: 'eu-west-1',
      PDS_BLOBSTORE_S3_ENDPOINT: 'http://127.0.0.1:9000',
      PDS_BLOBSTORE_S3_FORCE_PATH_STYLE: 'true',
      PDS_BLOBSTORE_S3_ACCESS_KEY_ID: 'id',
      PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY: 'secret',
      PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS: '30000',
      PORTAGE_BLOBSTORE_CDN_URL: 'https://cdn.example.com/',
      PORTAGE_BLOBSTORE_PREVIOUS: 'disk',
      PDS_REDIS_SCRATCH_ADDRESS: '127.0.0.1:6379',
    });
    assert.equal(config.blobstoreS3?.bucket, 'blobs');
    assert.equal(config.blobstoreS3?.forcePathStyle, true);
    assert.equal(config.blobstoreS3?.uploadTimeoutMs, 30000);
    assert.equal(config.blobstoreCdnUrl, 'https://cdn.example.com');
    assert.equal(config.blobstorePrevious, 'disk');
    assert.equal(config.redisScratchAddress, '127.0.0.1:6379');
    assert.equal(loadConfig({ PDS_DATA_DIRECTORY: fresh() }).blobstoreS3, undefined);
  });

  const needsBucket: [string, string][] = [
    ['PORTAGE_BLOBSTORE_PREVIOUS', 'disk'],
    ['PORTAGE_BLOBSTORE_CDN_URL', 'https://cdn.example.com'],
  ];
  for (const [name, value] of needsBucket) {
    it(`refuses ${name} without a bucket, saying to set one`, () => {
      assert.throws(
        () => loadConfig({ PDS_DATA_DIRECTORY: fresh(), [name]: value }),
        (err: unknown) =>
          err instanceof ConfigError && err.variable === name && /PDS_BLOBSTORE_S3_BUCKET/.test(err.message),
      );
    });
  }

  it('refuses half an S3 key pair', () => {
    assert.throws(
      () =>
        loadConfig({ PDS_DATA_DIRECTORY: fresh(), PDS_BLOBSTORE_S3_BUCKET: 'b', PDS_BLOBSTORE_S3_ACCESS_KEY_ID: 'id' }),
      (err: unknown) => err instanceof ConfigError && err.variable === 'PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY',
    );
  });

  const bad: [string, string][] = [
    ['PDS_PORT', 'eighty'],
    ['PDS_PORT', '70000'],
    ['PDS_HOSTNAME', 'not a host'],
    ['PDS_SERVICE_DID', 'web:nope'],
    ['PDS_DID_PLC_URL', 'ftp://plc'],
    ['PDS_INVITE_REQUIRED', 'maybe'],
    ['PDS_BLOB_UPLOAD_LIMIT', '-5'],
    ['PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX', 'abcd'],
    ['PDS_EMAIL_SMTP_URL', 'mail.example.com'],
    ['LOG_LEVEL', 'loud'],
    ['PORTAGE_BACKUP_INTERVAL', '6 hours'],
    ['PORTAGE_BACKUP_INTERVAL', '0h'],
    ['PORTAGE_BACKUP_KEEP', '0'],
    ['PORTAGE_BLOBSTORE_PREVIOUS', 'tape'],
  ];
  for (const [name, value] of bad) {
    it(`stops on a bad ${name} and names it`, () => {
      assert.throws(
        () => loadConfig({ PDS_DATA_DIRECTORY: fresh(), [name]: value }),
        (err: unknown) => err instanceof ConfigError && err.variable === name && err.message.startsWith(`${name}:`),
      );
    });
  }
});
