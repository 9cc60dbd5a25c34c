/**
 * `portage migrate`: moves an account to another PDS with the engine from @portage/migrate.
 * Exit codes: 0 done, 1 failed (state saved; safe to run again), 2 bad usage, 3 waiting for the
 * emailed PLC token (run again with --plc-token), 4 a daily limit of the new server is spent (run
 * again after the time it says). Passwords only from the environment or a hidden
 * prompt, never from arguments (they would end up in shell history and process lists).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { MigrationCredentials } from '@portage/migrate/engine';
import {
  badUrlFlag,
  CONCURRENCY_RANGE_MESSAGE,
  createProgressRenderer,
  didAsFolderName,
  parseCommandFlags,
  parseConcurrency,
  reportUsageError,
} from '../command-line.ts';
import { EXIT } from '../next-step.ts';

export const description = 'Move an account to another PDS: resumable, verified, with a local backup';

const USAGE = `Usage: portage migrate --from <handle|did> --to <new PDS URL> [options]

  --from <handle|did>       the account to move (required)
  --to <url>                the new PDS (required)
  --from-pds <url>          the old PDS (skip looking it up in the DID document)
  --plc-url <url>           PLC directory (default https://plc.directory)
  --new-handle <handle>     handle on the new PDS (default: keep the current one)
  --new-email <address>     email on the new PDS (default: the old account's email)
  --invite-code <code>      invite code, if the new PDS requires one
  --plc-token <code>        the code the old PDS emailed for the identity update
  --auth-factor-token <code> the sign-in code the old PDS emailed (email 2FA)
  --recovery-key <file>     make (or reuse) a rotation key you hold, saved to <file> (0600)
  --state-dir <dir>         where progress is kept between runs (default ~/.portage/migrations)
  --backup-dir <dir>        local backup folder (default ~/.portage/backups/<did>)
  --no-backup               do not keep a local backup
  --concurrency <n>         parallel blob transfers (default 8)
  --json                    print one JSON event per line
  --yes                     do not ask for confirmation

Passwords: PORTAGE_OLD_PASSWORD and PORTAGE_NEW_PASSWORD (default: the old password), or a prompt.
Exit codes: 0 done, 1 failed (safe to run again), 2 bad usage, 3 waiting for the PLC token,
4 stopped at a daily upload limit (run again after the time it says).`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('migrate', USAGE, args, {
    from: { type: 'string' },
    to: { type: 'string' },
    'from-pds': { type: 'string' },
    'plc-url': { type: 'string' },
    'new-handle': { type: 'string' },
    'new-email': { type: 'string' },
    'invite-code': { type: 'string' },
    'plc-token': { type: 'string' },
    'auth-factor-token': { type: 'string' },
    'recovery-key': { type: 'string' },
    'state-dir': { type: 'string' },
    'backup-dir': { type: 'string' },
    'no-backup': { type: 'boolean' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
    yes: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags;
  const str = (k: string) => values[k] as string | undefined;
  const usage = (why: string) => reportUsageError('migrate', USAGE, why);
  if (!str('from')) return usage('--from is required');
  if (!str('to')) return usage('--to is required');
  const badUrl = badUrlFlag(values, ['to', 'from-pds', 'plc-url']);
  if (badUrl) return usage(badUrl);
  if (values['no-backup'] && str('backup-dir')) return usage('--backup-dir and --no-backup exclude each other');
  const concurrency = parseConcurrency(str('concurrency'));
  if (concurrency === undefined) return usage(CONCURRENCY_RANGE_MESSAGE);

  const json = values.json === true;
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
  const render = await createProgressRenderer(json, interactive);
  // The engine starts loading once the command line is known to be good, and loads while the
  // person types the password (see main.ts).
  const engine = loadEngine();
  const { prompt } = await import('@portage/migrate/terminal.node');

  let oldPassword = process.env.PORTAGE_OLD_PASSWORD;
  let newPassword = process.env.PORTAGE_NEW_PASSWORD;
  if (!oldPassword) {
    if (!interactive) return usage('set PORTAGE_OLD_PASSWORD (no terminal to ask for the password)');
    oldPassword = await prompt(`Password of ${str('from')} on the old server: `, true);
  }
  const credentials: MigrationCredentials = {
    oldPassword: async () => oldPassword!,
    newPassword: async () => {
      if (newPassword === undefined && interactive) {
        newPassword = (await prompt('Password for the new server (Enter = same as the old one): ', true)) || undefined;
      }
      return newPassword ?? oldPassword!;
    },
    authFactorToken: async () =>
      str('auth-factor-token') ??
      (interactive
        ? (await prompt('The old server emailed a sign-in code; enter it: ')).trim() || undefined
        : undefined),
    plcToken: async (requested) => {
      if (!requested) return str('plc-token');
      if (!interactive) return undefined;
      return (await prompt('Enter the code from the email (PLC token): ')).trim() || undefined;
    },
  };

  if (interactive && !values.yes && !json) {
    const answer = await prompt(
      `Move ${str('from')} to ${str('to')}? The old account is deactivated at the end. [y/N] `,
    );
    if (!/^y(es)?$/i.test(answer.trim())) {
      process.stderr.write('Nothing was changed.\n');
      return 1;
    }
  }

  const {
    nodeResolveTxt,
    DirectoryBackup,
    fetchWithoutClientTimeouts,
    migrate,
    startMemoryGuard,
    FileRecoveryKeyStore,
    DirectoryStorage,
  } = await engine;
  startMemoryGuard();
  const stateDir = resolve(str('state-dir') ?? join(homedir(), '.portage', 'migrations'));
  const backupRoot = str('backup-dir');
  const result = await migrate(
    {
      from: str('from')!,
      to: str('to')!,
      fromPds: str('from-pds'),
      plcUrl: str('plc-url'),
      newHandle: str('new-handle'),
      newEmail: str('new-email'),
      inviteCode: str('invite-code'),
      concurrency,
    },
    {
      storage: new DirectoryStorage(stateDir),
      fetch: await fetchWithoutClientTimeouts(),
      credentials,
      onEvent: render,
      resolveTxt: nodeResolveTxt,
      recoveryKey: str('recovery-key') ? new FileRecoveryKeyStore(resolve(str('recovery-key')!)) : undefined,
      openBackup: values['no-backup']
        ? undefined
        : (did) =>
            new DirectoryBackup(
              resolve(backupRoot ?? join(homedir(), '.portage', 'backups', didAsFolderName(did))),
              did,
            ).open(),
    },
  );
  if (result.status === 'done') return EXIT.done;
  if (result.status === 'waiting-for-plc-token') return EXIT.waitingForPlcToken;
  if (result.status === 'resume-later') return EXIT.resumeLater;
  return EXIT.failed;
}

async function loadEngine() {
  const [dns, backup, fetch, engine, memory, recoveryKey, storage] = await Promise.all([
    import('@portage/atproto/identity/dns.node'),
    import('@portage/migrate/backup.node'),
    import('@portage/migrate/fetch.node'),
    import('@portage/migrate/engine'),
    import('@portage/migrate/memory.node'),
    import('@portage/migrate/recovery-key.node'),
    import('@portage/migrate/storage.node'),
  ]);
  return {
    nodeResolveTxt: dns.nodeResolveTxt,
    DirectoryBackup: backup.DirectoryBackup,
    fetchWithoutClientTimeouts: fetch.fetchWithoutClientTimeouts,
    migrate: engine.migrate,
    startMemoryGuard: memory.startMemoryGuard,
    FileRecoveryKeyStore: recoveryKey.FileRecoveryKeyStore,
    DirectoryStorage: storage.DirectoryStorage,
  };
}
