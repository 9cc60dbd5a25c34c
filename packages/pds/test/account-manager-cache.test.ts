// The account manager keeps account rows in memory (they are read on every authenticated
// request); every change to an account must be seen by the next read, by DID and by handle,
// and a change that fails must not leave a stale row behind.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AccountManager } from '../src/account/account-manager.ts';
import { jwtKeyFromSecret, TokenIssuer } from '../src/auth/tokens.ts';

const dir = mkdtempSync(join(tmpdir(), 'portage-account-cache-'));
const accounts = new AccountManager({
  dbPath: join(dir, 'account.sqlite'),
  tokens: new TokenIssuer(jwtKeyFromSecret('account-cache-test'), 'did:web:localhost'),
  hostname: 'localhost',
});
after(() => {
  accounts.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('account rows read after every change', () => {
  test('handle, deactivation, activation and deletion are seen at once by DID and by handle', async () => {
    const did = 'did:plc:cachecachecachecachecach';
    await accounts.createAccount({ did, handle: 'first.test', email: 'c@example.com', password: 'pw-cache-1' });
    // Read both ways first, so that both are cached before each change.
    assert.equal(accounts.getAccount(did)?.handle, 'first.test');
    assert.equal(accounts.getAccount('FIRST.test')?.did, did);

    accounts.updateHandle(did, 'second.test');
    assert.equal(accounts.getAccount(did)?.handle, 'second.test');
    assert.equal(accounts.getAccount('first.test'), undefined, 'the old handle no longer finds the account');
    assert.equal(accounts.getAccount('second.test')?.did, did);

    accounts.deactivateAccount(did, '2030-01-01T00:00:00.000Z');
    assert.notEqual(accounts.getAccount(did)?.deactivatedAt, null);
    assert.equal(accounts.getAccount('second.test')?.deleteAfter, '2030-01-01T00:00:00.000Z');

    accounts.activateAccount(did);
    assert.equal(accounts.getAccount(did)?.deactivatedAt, null);
    assert.equal(accounts.getAccount('second.test')?.deactivatedAt, null);

    accounts.deleteAccount(did);
    assert.equal(accounts.getAccount(did), undefined);
    assert.equal(accounts.getAccount('second.test'), undefined);
  });

  test('a refused change leaves the cached rows true to the database', async () => {
    const a = 'did:plc:cacheaaaaaaaaaaaaaaaaaaa';
    const b = 'did:plc:cachebbbbbbbbbbbbbbbbbbb';
    await accounts.createAccount({ did: a, handle: 'alpha.test', email: 'a@example.com', password: 'pw-cache-a' });
    await accounts.createAccount({ did: b, handle: 'beta.test', email: 'b@example.com', password: 'pw-cache-b' });
    assert.equal(accounts.getAccount(b)?.handle, 'beta.test');
    assert.throws(() => accounts.updateHandle(b, 'alpha.test'), /Handle already taken/);
    assert.equal(accounts.getAccount(b)?.handle, 'beta.test');
    assert.equal(accounts.getAccount('alpha.test')?.did, a);
    // A sign-up that collides changes nothing either.
    await assert.rejects(
      accounts.createAccount({
        did: 'did:plc:cachecccccccccccccccccccc',
        handle: 'beta.test',
        email: null,
        password: 'x',
      }),
      /Handle already taken/,
    );
    assert.equal(accounts.getAccount('beta.test')?.did, b);
    assert.equal(accounts.getAccount('did:plc:cachecccccccccccccccccccc'), undefined);
  });
});

describe('refresh-token rotation', () => {
  test('concurrent rotations of one token agree on its successor, even when signing takes a while', async () => {
    /** Signs on a later turn of the event loop, so that concurrent rotations interleave. */
    class SlowIssuer extends TokenIssuer {
      override async createAccessToken(...args: Parameters<TokenIssuer['createAccessToken']>): Promise<string> {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return super.createAccessToken(...args);
      }
    }
    const slowDir = mkdtempSync(join(tmpdir(), 'portage-account-rotate-'));
    const slow = new AccountManager({
      dbPath: join(slowDir, 'account.sqlite'),
      tokens: new SlowIssuer(jwtKeyFromSecret('account-rotate-test'), 'did:web:localhost'),
      hostname: 'localhost',
    });
    try {
      const did = 'did:plc:rotaterotaterotaterotate';
      await slow.createAccount({ did, handle: 'rotate.test', email: null, password: 'pw-rotate-1' });
      const session = await slow.createSession(did, null);
      const jti = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).jti as string;
      const rotations = await Promise.all([0, 1, 2].map(() => slow.rotateRefreshToken(jti(session.refreshJwt))));
      const successors = new Set(rotations.map((r) => jti(r!.refreshJwt)));
      assert.equal(successors.size, 1, 'one successor');
      const rows = slow.db.prepare('SELECT count(*) AS n FROM refresh_token WHERE did = ?').get(did) as { n: number };
      assert.equal(rows.n, 2, 'the rotated token and its one successor');
    } finally {
      slow.close();
      rmSync(slowDir, { recursive: true, force: true });
    }
  });
});
