/**
 * `portage identity add-rotation-key` and `identity show`, against Portage and the reference PDS:
 * the key file is written 0600, the directory lists the key first, the key signs an operation the
 * directory accepts, and `show` names each key's holder and each operation's signer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importSigningKey } from '@portage/atproto/crypto';
import { PlcClient } from '@portage/atproto/plc/client';
import { type PlcOperation, updateOperation } from '@portage/atproto/plc/operations';
import { outboxToken, startTestPds, type TestPds } from '../../pds/test/harness.ts';
import {
  type Account,
  createAccount,
  type Network,
  plcToken,
  runCli,
  startNetwork,
} from '../../migrate/test/helpers/network.ts';

let pds: TestPds;
let net: Network;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portage-identity-'));
  [pds, net] = await Promise.all([startTestPds(), startNetwork(1)]);
});

after(async () => {
  await pds?.close().catch(() => {});
  await net?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The whole add-rotation-key flow, then the new key signs an operation itself. */
async function addKeyAndUseIt(account: Account, plcUrl: string, token: () => Promise<string | undefined>) {
  const keyFile = join(dir, `${account.handle}.key`);
  const args = ['identity', 'add-rotation-key', '--from', account.did, '--key-file', keyFile, '--plc-url', plcUrl];
  const env = { PORTAGE_PASSWORD: account.password };
  const plc = new PlcClient(plcUrl);
  const before = await plc.getDocumentData(account.did);

  const waiting = await runCli(args, env);
  assert.equal(waiting.code, 3, waiting.stderr);
  assert.match(
    waiting.stdout,
    /emailed a confirmation code\. Run the same command again with --plc-token <code from the email>\. Nothing was changed\./,
  );
  assert.throws(() => statSync(keyFile), 'no key is made before the code is there');

  const code = await token();
  assert.ok(code, 'the server emailed a code');
  const done = await runCli([...args, '--plc-token', code], env);
  assert.equal(done.code, 0, done.stderr);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'the key file is owner-only');
  const hex = readFileSync(keyFile, 'utf8').trim();
  assert.equal(done.stderr.split(hex).length - 1, 1, 'the key is shown exactly once');
  const key = await importSigningKey(hex, 'secp256k1');
  const data = await plc.getDocumentData(account.did);
  assert.deepEqual(data.rotationKeys, [key.did(), ...before.rotationKeys], 'the new key first, the others kept');

  const again = await runCli([...args, '--plc-token', code], env);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already the first rotation key/);

  // The key the user holds can change the identity on its own, with no server involved.
  const audit = await plc.getAuditLog(account.did);
  const last = audit.filter((e) => !e.nullified).at(-1)!;
  const op = await updateOperation(last.operation as PlcOperation, last.cid, {}, key);
  await plc.submitOperation(account.did, op);
  assert.equal((await plc.getAuditLog(account.did)).length, audit.length + 1, 'the directory accepted it');
  return { keyFile, key: key.did(), serverKey: before.rotationKeys[0]! };
}

describe('portage identity', () => {
  it('adds a rotation key on Portage, and show names who holds each key and who signed what', async () => {
    const fay = await createAccount(pds, 'fay', { records: 2, blobs: 0 });
    const added = await addKeyAndUseIt(fay, pds.plcUrl, async () =>
      outboxToken(pds.ctx.mailer.outboxPath, 'fay@example.com'),
    );

    const shown = await runCli(
      ['identity', 'show', '--did', fay.did, '--key', added.keyFile, '--plc-url', pds.plcUrl],
      { PORTAGE_PASSWORD: fay.password },
    );
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`1\\. ${added.key}\\n\\s+held by you \\(${added.keyFile}\\)`));
    assert.match(shown.stdout, new RegExp(`2\\. ${added.serverKey}\\n\\s+held by the server ${pds.publicUrl}`));
    assert.match(shown.stdout, /handle\s+fay\.test/);
    const log = shown.stdout.slice(shown.stdout.indexOf('Log'));
    const lines = log.split('\n').filter((l) => l.includes('signed by'));
    assert.equal(lines.length, 3, 'creation, the key added, the key used');
    assert.match(lines[1]!, /signed by key 2/, "the server's key added the user's");
    assert.match(lines[2]!, /signed by key 1/, "the user's key signed the last one");

    const json = await runCli(['identity', 'show', '--did', fay.did, '--plc-url', pds.plcUrl, '--json'], {});
    const report = JSON.parse(json.stdout) as { rotationKeys: { key: string; holders: string[] }[] };
    assert.deepEqual(
      report.rotationKeys.map((k) => k.holders),
      [[], []],
      'without a key file or a password nobody is named',
    );
  });

  it('adds a rotation key on the reference PDS', async () => {
    const [ref] = net.pdses;
    const gus = await createAccount(ref!, 'gus', { records: 2, blobs: 0 });
    await addKeyAndUseIt(gus, net.plc.url, () => plcToken(ref!, gus.did));
  });

  it('bad usage changes nothing', async () => {
    assert.equal((await runCli(['identity'], {})).code, 2);
    assert.equal((await runCli(['identity', 'show'], {})).code, 2);
    const noKey = await runCli(['identity', 'add-rotation-key', '--from', 'did:plc:x'], {});
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--key-file is required/);
    const web = await runCli(['identity', 'show', '--did', 'did:web:example.com', '--plc-url', pds.plcUrl], {});
    assert.equal(web.code, 1);
    assert.match(web.stderr, /not a did:plc identity/);
    const unknown = await runCli(
      ['identity', 'show', '--did', 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', '--plc-url', pds.plcUrl],
      {},
    );
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /portage identity show: .*\. Check --did \(and --plc-url/);
  });
});
