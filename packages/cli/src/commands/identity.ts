/**
 * `portage identity show | add-rotation-key`: a did:plc identity as the directory holds it, and
 * adding a rotation key the user holds to an account that is not moving. Exit codes as
 * `portage migrate`: 0 done, 1 failed (said in a sentence; safe to run again), 2 bad usage,
 * 3 waiting for the emailed code. Passwords only from the environment or a hidden prompt.
 */
import { resolve } from 'node:path';
import { badUrlFlag, parseCommandFlags, reportUsageError, USAGE_EXIT_CODE } from '../command-line.ts';
import { commandLineNextStep, EXIT } from '../next-step.ts';

export const description = 'Show a DID, its rotation keys and who holds them; add a rotation key you hold';

const USAGE = `Usage: portage identity show --did <did> [--key <file>]... [--plc-url <url>] [--json]
       portage identity add-rotation-key --from <handle|did> --key-file <file> [--plc-token <code>] [--plc-url <url>]

show               the DID document, the rotation keys (highest priority first) and who holds each,
                   and the log with the key that signed each operation
  --key <file>     a rotation key file you hold (hex), to recognize it (repeatable)
  With PORTAGE_PASSWORD, every server in the log is asked which keys it holds for the account.

add-rotation-key   makes a key you hold the first rotation key of an account that stays where it is
  --key-file <file>  where the new key is written (mode 0600); an existing key file there is used
  --plc-token <code> the code the server emailed (without it, one is emailed and the command asks
                     for it, or exits with code 3 to be run again with it)
  --auth-factor-token <code>  the sign-in code the server emailed (email 2FA)

  --plc-url <url>  PLC directory (default https://plc.directory)
Password: PORTAGE_PASSWORD (or PORTAGE_OLD_PASSWORD), or a prompt.
Exit codes: 0 done, 1 failed, 2 bad usage, 3 waiting for the emailed code.`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'show') return show(rest);
  if (sub === 'add-rotation-key') return addKey(rest);
  if (sub === '--help' || sub === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  return reportUsageError('identity', USAGE, sub ? `unknown subcommand "${sub}"` : 'a subcommand is required');
}

async function show(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('identity show', USAGE, args, {
    did: { type: 'string' },
    key: { type: 'string', multiple: true },
    'plc-url': { type: 'string' },
    json: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags as Record<string, unknown>;
  const did = values.did as string | undefined;
  if (!did?.startsWith('did:')) return reportUsageError('identity show', USAGE, '--did <did> is required');
  const badUrl = badUrlFlag(parsed.flags, ['plc-url']);
  if (badUrl) return reportUsageError('identity show', USAGE, badUrl);
  const [{ describeIdentity }, { FileRecoveryKeyStore }, { MigrationError }] = await Promise.all([
    import('@portage/migrate/identity/describe'),
    import('@portage/migrate/recovery-key.node'),
    import('@portage/migrate/errors'),
  ]);
  try {
    const localKeys = [];
    for (const file of (values.key as string[] | undefined) ?? []) {
      const key = await new FileRecoveryKeyStore(resolve(file)).load();
      if (!key) {
        process.stderr.write(`portage identity show: there is no key file at ${file}.\n`);
        return USAGE_EXIT_CODE;
      }
      localKeys.push({ name: file, key });
    }
    const report = await describeIdentity(did, (values['plc-url'] as string | undefined) ?? 'https://plc.directory', {
      localKeys,
      password: process.env.PORTAGE_PASSWORD || process.env.PORTAGE_OLD_PASSWORD || undefined,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const number = new Map(report.rotationKeys.map((k, i) => [k.key, i + 1]));
    const out = [
      report.did,
      `  handle       ${report.handle ?? '(none)'}`,
      `  PDS          ${report.pds ?? '(none)'}`,
      `  signing key  ${report.signingKey ?? '(none)'}`,
      'Rotation keys (the first outranks the others):',
      ...report.rotationKeys.map(
        (k, i) =>
          `  ${i + 1}. ${k.key}\n     held by ${k.holders.length > 0 ? k.holders.join(' and ') : 'someone unknown (give --key or PORTAGE_PASSWORD to tell)'}`,
      ),
      'Log (oldest first):',
      ...report.log.map((e) => {
        const signer = e.signedBy
          ? number.has(e.signedBy)
            ? `key ${number.get(e.signedBy)}`
            : e.signedBy
          : 'no listed key';
        const what =
          e.type === 'plc_tombstone' ? 'deactivated the DID' : `PDS ${e.pds ?? '-'}, handle ${e.handle ?? '-'}`;
        return `  ${e.createdAt}  ${what}; signed by ${signer}${e.nullified ? ' (NULLIFIED: overridden by a higher key)' : ''}`;
      }),
      ...report.unasked.map((u) => `Could not ask ${u.server} about its keys: ${u.reason}.`),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } catch (err) {
    if (err instanceof MigrationError) {
      process.stderr.write(`portage identity show: ${err.message}. ${commandLineNextStep(err.nextStep)}\n`);
      return 1;
    }
    throw err;
  }
}

async function addKey(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('identity add-rotation-key', USAGE, args, {
    from: { type: 'string' },
    'key-file': { type: 'string' },
    'plc-token': { type: 'string' },
    'auth-factor-token': { type: 'string' },
    'plc-url': { type: 'string' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const str = (k: string) => parsed.flags[k] as string | undefined;
  const usage = (why: string) => reportUsageError('identity add-rotation-key', USAGE, why);
  if (!str('from')) return usage('--from is required');
  if (!str('key-file')) return usage('--key-file is required');
  const badUrl = badUrlFlag(parsed.flags, ['plc-url']);
  if (badUrl) return usage(badUrl);
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
  const [{ addRotationKey }, { FileRecoveryKeyStore }, { nodeResolveTxt }, { prompt }, { MigrationError }] =
    await Promise.all([
      import('@portage/migrate/identity/rotation-key'),
      import('@portage/migrate/recovery-key.node'),
      import('@portage/atproto/identity/dns.node'),
      import('@portage/migrate/terminal.node'),
      import('@portage/migrate/errors'),
    ]);
  let password = process.env.PORTAGE_PASSWORD || process.env.PORTAGE_OLD_PASSWORD;
  if (!password) {
    if (!interactive) return usage('set PORTAGE_PASSWORD (no terminal to ask for the password)');
    password = await prompt(`Password of ${str('from')}: `, true);
  }
  try {
    const result = await addRotationKey(
      { from: str('from')!, ...(str('plc-url') ? { plcUrl: str('plc-url') } : {}) },
      {
        resolveTxt: nodeResolveTxt,
        keyStore: new FileRecoveryKeyStore(resolve(str('key-file')!)),
        password: async () => password,
        authFactorToken: async () => str('auth-factor-token'),
        plcToken: async (requested) => {
          if (!requested) return str('plc-token');
          if (!interactive) return undefined;
          return (await prompt('Enter the code from the email: ')).trim() || undefined;
        },
        // The key goes to the terminal only, never into a log or a pipe's JSON.
        onNotice: (message) => process.stderr.write(`${message}\n`),
      },
    );
    process.stdout.write(`${result.message}${result.next ? `. ${commandLineNextStep(result.next)}` : ''}\n`);
    return result.status === 'waiting-for-plc-token' ? EXIT.waitingForPlcToken : EXIT.done;
  } catch (err) {
    if (err instanceof MigrationError) {
      process.stderr.write(`portage identity add-rotation-key: ${err.message}. ${commandLineNextStep(err.nextStep)}\n`);
      return 1;
    }
    throw err;
  }
}
