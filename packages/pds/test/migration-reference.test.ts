/**
 * Two-way migration with the reference PDS (@atproto/dev-env, a test peer only), both sides on
 * one reference PLC directory: reference -> Portage and Portage -> reference, through the
 * canonical client flow. Records, blobs and preferences arrive identical, the PLC directory
 * accepts each operation, and the old side ends deactivated.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import type { TestPds as ReferencePds, TestPlc } from '@atproto/dev-env';
import { SMTPServer } from 'smtp-server';
import { startReferencePds, startReferencePlc } from '../../../test/support/reference-peers.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { fillAccount, migrateAccount, snapshot } from './migration-flow.ts';

describe('migration between the reference PDS and Portage', () => {
  let dir: string;
  let plc: TestPlc;
  let reference: ReferencePds;
  let portage: TestPds;
  let smtp: SMTPServer;
  const mails: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-migration-ref-'));
    plc = await startReferencePlc(dir);
    reference = await startReferencePds(dir, plc.url, { serviceDid: 'did:web:reference-pds.test' });

    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, _session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push(Buffer.concat(chunks).toString());
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const { port } = smtp.server.address() as { port: number };
    portage = await startTestPds({
      plcUrl: plc.url,
      env: { PDS_EMAIL_SMTP_URL: `smtp://127.0.0.1:${port}`, PDS_SERVICE_DID: 'did:web:portage.test' },
    });
  });

  after(async () => {
    await portage?.close();
    await reference?.close().catch(() => {});
    await plc?.close().catch(() => {});
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function referencePlcToken(did: string): Promise<string> {
    const row = await reference.ctx.accountManager.db.db
      .selectFrom('email_token')
      .selectAll()
      // The reference's schema types its columns with branded string types.
      .where('did', '=', did as never)
      .where('purpose', '=', 'plc_operation' as never)
      .executeTakeFirst();
    assert.ok(row, 'the reference issued a PLC token');
    return row.token;
  }

  async function portagePlcToken(): Promise<string> {
    const match = /[A-Z2-7]{5}-[A-Z2-7]{5}/.exec(mails.at(-1) ?? '');
    assert.ok(match, 'Portage mailed a PLC token');
    return match[0];
  }

  async function checkPlcLog(did: string, endpoint: string, operations: number): Promise<void> {
    const res = await fetch(`${plc.url}/${did}/log/audit`);
    const audit = (await res.json()) as {
      nullified: boolean;
      operation: { services: Record<string, { endpoint: string }> };
    }[];
    const live = audit.filter((e) => !e.nullified);
    assert.equal(live.length, operations, 'every operation was accepted');
    assert.equal(live.at(-1)!.operation.services.atproto_pds!.endpoint, endpoint);
  }

  /**
   * Creates `handle` on `from`, fills it, moves it to `to` with the canonical flow, and checks
   * that records, blobs and preferences arrived identical and the PLC log shows both operations.
   */
  async function moveAccount(opts: {
    from: string;
    to: string;
    /** Where the DID document must point afterwards (the new side's public URL). */
    endpoint: string;
    handle: string;
    readPlcToken: (did: string) => Promise<string>;
  }) {
    const password = `${opts.handle}-password-1`;
    const email = `${opts.handle.split('.')[0]}@example.com`;
    const oldAgent = new AtpAgent({ service: opts.from });
    await oldAgent.createAccount({ handle: opts.handle, email, password });
    await fillAccount(oldAgent, { records: 120, blobs: 4 });
    const did = oldAgent.session!.did;
    const before = await snapshot(oldAgent, did);

    const { newAgent, blobsMoved } = await migrateAccount({
      oldAgent,
      newServiceUrl: opts.to,
      handle: opts.handle,
      email,
      password,
      readPlcToken: opts.readPlcToken,
    });
    assert.equal(blobsMoved, 4);
    const after = await snapshot(newAgent, did);
    assert.deepEqual(after.records, before.records);
    assert.deepEqual(after.blobs, before.blobs);
    assert.deepEqual(after.preferences, before.preferences);
    await checkPlcLog(did, opts.endpoint, 2);
    const { data: status } = await newAgent.com.atproto.server.checkAccountStatus();
    assert.equal(status.activated, true);
    assert.equal(status.validDid, true);
    return { did, oldAgent, newAgent };
  }

  it('moves an account from the reference PDS into Portage', async () => {
    const { did, oldAgent, newAgent } = await moveAccount({
      from: reference.url,
      to: portage.url,
      endpoint: portage.publicUrl,
      handle: 'erin.test',
      readPlcToken: referencePlcToken,
    });
    // Portage's head is signed by its own key for the account (the reference would keep the old one).
    const { data: car } = await newAgent.com.atproto.sync.getRepo({ did });
    await verifyRepoCar(car, did, (await portage.ctx.actorStore.getSigningKey(did)).did());
    const { data: oldSession } = await oldAgent.com.atproto.server.getSession();
    assert.equal(oldSession.active, false);
  });

  it('moves an account from Portage out to the reference PDS', async () => {
    const { did } = await moveAccount({
      from: portage.url,
      to: reference.url,
      endpoint: reference.url,
      handle: 'dave.test',
      readPlcToken: portagePlcToken,
    });
    assert.notEqual(portage.ctx.accountManager.getAccount(did)?.deactivatedAt, null);
  });
});
