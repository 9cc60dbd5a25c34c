/**
 * Restore benchmark: an account the size of the migrate benchmark's (20,000 records and 200 blobs
 * of 256 KB) restored from a `portage backup` into Portage's PDS with `portage restore`'s engine,
 * beside the same-sized account moved from a reference PDS to another reference PDS by the
 * reference-style flow (the migrate benchmark's reference client), in the same run.
 *
 * Two accounts of the same shape are made on reference PDS A: one is moved A -> B by the
 * reference flow; the other gets a rotation key the user holds and a backup, then A is stopped
 * for good and the account is restored into Portage. Every server runs in a process of its own
 * (started through bench/lib/migration-servers.ts, with their PLC-token endpoints), and so does
 * each client. The restore's time includes checking the whole backup (every block, the commit
 * signature, every blob's hash) and the verification at its end.
 *
 * Options: --records <n> (20000) --blobs <n> (200) --blob-kb <n> (256).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, runClientChild } from './lib/child-server.ts';
import { measureCpu, settle } from './lib/machine.ts';
import { fetchToken, fillAccount, type ServerHandle, startServerProcess } from './lib/migration-servers.ts';
import { peakRssMb, report, writeResults } from './lib/report.ts';

interface RestoreJob {
  backupDir: string;
  to: string;
  plcUrl: string;
  password: string;
  keyHex: string;
}

interface ClientResult {
  phases: Record<string, number>;
  total: number;
  peakRssMb: number;
}

const MIGRATE_BENCH = join(import.meta.dirname, 'migrate.ts');
const argv = process.argv.slice(2);
if (argv[0] === '--restore-client') {
  const result = await runRestore(JSON.parse(argv[1]!) as RestoreJob);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await main();
}

/** In a child: the restore engine as `portage restore` runs it, timed by step. */
async function runRestore(job: RestoreJob): Promise<ClientResult> {
  const { restore } = await import('../packages/migrate/src/restore/restore.ts');
  const { DirectoryBackup } = await import('../packages/migrate/src/backup.node.ts');
  const { verifyBackup, backupAccountDid } = await import('../packages/migrate/src/backup-check.node.ts');
  const { MemoryStorage } = await import('../packages/migrate/src/storage.ts');
  const { startMemoryGuard } = await import('../packages/migrate/src/memory.node.ts');
  const { importSigningKey } = await import('../packages/atproto/src/crypto.ts');
  startMemoryGuard();
  const started = new Map<string, number>();
  const phases: Record<string, number> = {};
  const t0 = performance.now();
  const did = await backupAccountDid(job.backupDir);
  const result = await restore(
    { to: job.to, plcUrl: job.plcUrl, email: 'restored@example.com', keyFile: 'bench key', concurrency: 8 },
    {
      storage: new MemoryStorage(),
      backup: new DirectoryBackup(job.backupDir, did),
      recoveryKey: await importSigningKey(job.keyHex, 'secp256k1'),
      checkBackup: (signingKeys, orRecordedKey) => verifyBackup(job.backupDir, { did, signingKeys, orRecordedKey }),
      password: async () => job.password,
      onEvent: (e) => {
        if (e.type === 'step-started') started.set(e.step, performance.now());
        if (e.type === 'step-done') phases[e.step] = (performance.now() - started.get(e.step)!) / 1000;
      },
    },
  );
  if (result.status !== 'done') throw new Error(`restore ended ${result.status}: ${result.message}`);
  return { phases, total: (performance.now() - t0) / 1000, peakRssMb: peakRssMb() };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      records: { type: 'string', default: '20000' },
      blobs: { type: 'string', default: '200' },
      'blob-kb': { type: 'string', default: '256' },
    },
  });
  const records = Number(values.records);
  const blobs = Number(values.blobs);
  const blobBytes = Number(values['blob-kb']) * 1024;
  const label = `${records} records + ${blobs} blobs x ${blobBytes / 1024} KB`;

  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-restore-'));
  process.env.TMPDIR = dir; // the reference servers write under os.tmpdir() and never clean up
  const { TestPlc } = await import('@atproto/dev-env');
  const { AtpAgent } = await import('@atproto/api');
  const { generateSigningKey } = await import('../packages/atproto/src/crypto.ts');
  const plc = await TestPlc.create({ port: await freePort() });
  const servers: ServerHandle[] = [];
  try {
    const env = { ...process.env, TMPDIR: dir };
    const a = await startServerProcess(plc.url, 'did:web:bench-a.test', env);
    servers.push(a);
    const b = await startServerProcess(plc.url, 'did:web:bench-b.test', env);
    servers.push(b);
    const portageData = join(dir, 'portage');
    mkdirSync(portageData);
    const p = await startServerProcess(plc.url, 'did:web:bench-portage.test', process.env, portageData);
    servers.push(p);

    const password = 'bench-password';
    const size = { records, blobs, bytes: blobBytes };
    const moved = await fillAccount(a.url, 'moved', password, size);
    const restored = await fillAccount(a.url, 'restored', password, size);
    const agent = new AtpAgent({ service: a.url });
    await agent.login({ identifier: restored, password });

    // The restored account's user-held rotation key, added through the old server's emailed token.
    const key = await generateSigningKey('secp256k1');
    await agent.com.atproto.identity.requestPlcOperationSignature();
    const token = await fetchToken(a.tokenUrl, restored);
    const current = (await (await fetch(`${plc.url}/${restored}/data`)).json()) as { rotationKeys: string[] };
    const signed = await agent.com.atproto.identity.signPlcOperation({
      token,
      rotationKeys: [key.did(), ...current.rotationKeys],
    });
    await agent.com.atproto.identity.submitPlcOperation({ operation: signed.data.operation });
    process.stderr.write('bench: backing up the account to restore...\n');
    const { backupAccount } = await import('../packages/migrate/src/backup-run.ts');
    const { DirectoryBackup } = await import('../packages/migrate/src/backup.node.ts');
    const backupDir = join(dir, 'backup');
    const backup = await backupAccount(
      { from: restored, pds: a.url, plcUrl: plc.url },
      { onEvent: () => {}, password, openBackup: (did) => new DirectoryBackup(backupDir, did).open() },
    );
    if (backup.status !== 'done') throw new Error(`backup failed: ${backup.message}`);

    process.stderr.write('bench: reference-style migration A -> B...\n');
    await settle();
    const reference = await measureCpu([a.pid, b.pid], () =>
      runClientChild<ClientResult>(
        MIGRATE_BENCH,
        [
          '--client',
          JSON.stringify({
            side: 'reference',
            did: moved,
            fromPds: a.url,
            to: b.url,
            plcUrl: plc.url,
            password,
            tokenUrl: a.tokenUrl,
          }),
        ],
        'reference',
      ),
    );
    process.stderr.write(`bench: reference phases ${JSON.stringify(reference.result.phases)}\n`);

    // The old server is gone for good before the restore.
    await a.stop();
    servers.splice(servers.indexOf(a), 1);
    process.stderr.write('bench: portage restore from the backup into Portage...\n');
    await settle();
    const ours = await measureCpu([p.pid], () =>
      runClientChild<ClientResult>(
        import.meta.filename,
        [
          '--restore-client',
          JSON.stringify({
            backupDir,
            to: p.url,
            plcUrl: plc.url,
            password,
            keyHex: key.privateKeyHex(),
          } satisfies RestoreJob),
        ],
        'portage',
      ),
    );
    process.stderr.write(`bench: restore phases ${JSON.stringify(ours.result.phases)}\n`);

    report({
      bench: 'restore',
      metric: `total seconds (${label}; portage = portage restore from a backup into Portage's PDS, with the backup check and verification; reference = reference-style migration between reference PDSes)`,
      unit: 's',
      better: 'lower',
      portage: ours.result.total,
      reference: reference.result.total,
    });
    const figures: [metric: string, unit: string, of: (r: ClientResult) => number][] = [
      ['repo phase seconds', 's', (r) => r.phases.repo!],
      ['blob phase seconds', 's', (r) => r.phases.blobs!],
      ['client peak RSS', 'MB', (r) => r.peakRssMb],
    ];
    for (const [metric, unit, of] of figures) {
      report({
        bench: 'restore',
        metric: `${metric} (${label})`,
        unit,
        better: 'lower',
        portage: of(ours.result),
        reference: of(reference.result),
      });
    }
    process.stderr.write(`bench: wrote ${writeResults('restore')}\n`);
  } finally {
    for (const server of servers) await server.stop().catch(() => {});
    await plc.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
