/**
 * `portage restore`: brings an account back from a backup onto a new PDS when its old server is
 * gone, with a rotation key the user holds (the engine is @portage/migrate's restore). Exit codes
 * as `portage migrate`: 0 done, 1 failed (state saved; safe to run again), 2 bad usage. The
 * password comes from the environment or a hidden prompt, never from arguments.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  badUrlFlag,
  CONCURRENCY_RANGE_MESSAGE,
  createProgressRenderer,
  parseCommandFlags,
  parseConcurrency,
  reportUsageError,
} from '../command-line.ts';
import { commandLineNextStep } from '../next-step.ts';

export const description = 'Restore an account from a backup onto a new PDS when its old server is gone';

const USAGE = `Usage: portage restore --backup <dir> --to <new PDS URL> --recovery-key <file> [options]

  --backup <dir>            the backup folder (portage backup, a migration's, or the wizard's download unpacked)
  --to <url>                the new PDS (required)
  --recovery-key <file>     a rotation key of the account you hold (hex private key, required)
  --did <did>               the account you mean (refuses a backup of another one)
  --handle <handle>         handle on the new PDS (default: the one the DID had)
  --email <address>         email on the new PDS (needed to create the account)
  --invite-code <code>      invite code, if the new PDS requires one
  --plc-url <url>           PLC directory (default https://plc.directory)
  --state-dir <dir>         where progress is kept between runs (default ~/.portage/migrations)
  --concurrency <n>         parallel blob uploads (default 8)
  --json                    print one JSON event per line

Password for the new account: PORTAGE_NEW_PASSWORD (or PORTAGE_PASSWORD), or a prompt.
Exit codes: 0 done, 1 failed (safe to run again), 2 bad usage.`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('restore', USAGE, args, {
    backup: { type: 'string' },
    to: { type: 'string' },
    'recovery-key': { type: 'string' },
    did: { type: 'string' },
    handle: { type: 'string' },
    email: { type: 'string' },
    'invite-code': { type: 'string' },
    'plc-url': { type: 'string' },
    'state-dir': { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags;
  const str = (k: string) => values[k] as string | undefined;
  const usage = (why: string) => reportUsageError('restore', USAGE, why);
  if (!str('backup')) return usage('--backup is required');
  if (!str('to')) return usage('--to is required');
  if (!str('recovery-key')) return usage('--recovery-key is required');
  const badUrl = badUrlFlag(values, ['to', 'plc-url']);
  if (badUrl) return usage(badUrl);
  const concurrency = parseConcurrency(str('concurrency'));
  if (concurrency === undefined) return usage(CONCURRENCY_RANGE_MESSAGE);

  const json = values.json === true;
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
  const render = await createProgressRenderer(json, interactive);
  const [
    { DirectoryBackup },
    check,
    { FileRecoveryKeyStore },
    { DirectoryStorage },
    { fetchWithoutClientTimeouts },
    { restore },
    terminal,
    memory,
    { MigrationError },
  ] = await Promise.all([
    import('@portage/migrate/backup.node'),
    import('@portage/migrate/backup-check.node'),
    import('@portage/migrate/recovery-key.node'),
    import('@portage/migrate/storage.node'),
    import('@portage/migrate/fetch.node'),
    import('@portage/migrate/restore/restore'),
    import('@portage/migrate/terminal.node'),
    import('@portage/migrate/memory.node'),
    import('@portage/migrate/errors'),
  ]);
  const fail = (err: unknown) => {
    const next = err instanceof MigrationError ? `. ${commandLineNextStep(err.nextStep)}` : '';
    process.stderr.write(`portage restore: ${err instanceof Error ? err.message : String(err)}${next}\n`);
    return 1;
  };

  const dir = resolve(str('backup')!);
  const keyFile = resolve(str('recovery-key')!);
  let did: string;
  let recoveryKey: Awaited<ReturnType<InstanceType<typeof FileRecoveryKeyStore>['load']>>;
  try {
    did = await check.backupAccountDid(dir);
    recoveryKey = await new FileRecoveryKeyStore(keyFile).load();
  } catch (err) {
    return fail(err);
  }
  if (!recoveryKey)
    return fail(
      new MigrationError('NoKeyFile', `there is no key file at ${keyFile}`, {
        kind: 'need-input',
        field: 'recoveryKey',
        reason: 'missing',
        nothingChanged: true,
      }),
    );

  let password = process.env.PORTAGE_NEW_PASSWORD || process.env.PORTAGE_PASSWORD || undefined;
  if (password === undefined && !interactive)
    return usage('set PORTAGE_NEW_PASSWORD (no terminal to ask for the password)');
  memory.startMemoryGuard();
  const result = await restore(
    {
      to: str('to')!,
      plcUrl: str('plc-url'),
      did: str('did'),
      handle: str('handle'),
      email: str('email'),
      inviteCode: str('invite-code'),
      concurrency,
      keyFile,
    },
    {
      storage: new DirectoryStorage(resolve(str('state-dir') ?? join(homedir(), '.portage', 'migrations'))),
      backup: new DirectoryBackup(dir, did),
      recoveryKey,
      checkBackup: (signingKeys, orRecordedKey) => check.verifyBackup(dir, { did, signingKeys, orRecordedKey }),
      password: async () => {
        password ??= await terminal.prompt(`Password for ${did} on the new server: `, true);
        return password;
      },
      onEvent: render,
      fetch: await fetchWithoutClientTimeouts(),
    },
  );
  return result.status === 'done' ? 0 : 1;
}
