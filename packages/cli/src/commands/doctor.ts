/**
 * `portage doctor`: says in plain words what state an account is in after a move (finished or
 * not, by any tool), and with --fix makes the safe repairs. Exit codes as `portage migrate`:
 * 0 the account is in order (after the repairs, with --fix), 1 a problem remains (each said in a
 * sentence with the next step; safe to run again), 2 bad usage. Passwords only from the
 * environment or a hidden prompt.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { badUrlFlag, parseCommandFlags, reportUsageError } from '../command-line.ts';
import { commandLineNextStep } from '../next-step.ts';
import type { DoctorResult } from '@portage/migrate/doctor/doctor';
import type { Diagnosis } from '@portage/migrate/doctor/diagnose';

export const description = 'Say what state an account is in after a move, and make the safe repairs (--fix)';

const USAGE = `Usage: portage doctor --from <handle|did> [--to <url>] [--backup <dir>] [--fix]

  --from <handle|did>   the account (required)
  --to <url>            the other server of the move (default: the server the DID named before)
  --plc-url <url>       PLC directory (default https://plc.directory)
  --backup <dir>        a backup of the account (portage backup / migrate) to restore lost data from
  --fix                 make the safe repairs: import a missing repository, upload missing blobs,
                        activate the account the DID points to, deactivate the old one
  --json                print the diagnosis as one JSON object

Passwords: PORTAGE_PASSWORD, or PORTAGE_OLD_PASSWORD / PORTAGE_NEW_PASSWORD as for portage migrate
(old: the server the account moved from; new: the one it moved to), or a prompt.
Exit codes: 0 in order, 1 a problem remains, 2 bad usage.`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('doctor', USAGE, args, {
    from: { type: 'string' },
    to: { type: 'string' },
    'plc-url': { type: 'string' },
    backup: { type: 'string' },
    fix: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags;
  const str = (k: string) => values[k] as string | undefined;
  const from = str('from');
  if (!from) return reportUsageError('doctor', USAGE, '--from is required');
  const badUrl = badUrlFlag(values, ['to', 'plc-url']);
  if (badUrl) return reportUsageError('doctor', USAGE, badUrl);
  const backupDir = str('backup');
  if (backupDir && !existsSync(join(resolve(backupDir), 'manifest.json'))) {
    return reportUsageError('doctor', USAGE, `there is no backup in ${backupDir} (it has no manifest.json)`);
  }
  const json = values.json === true;
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;

  const [{ runDoctor }, { nodeResolveTxt }, { DirectoryBackup }, { prompt }, { MigrationError }] = await Promise.all([
    import('@portage/migrate/doctor/doctor'),
    import('@portage/atproto/identity/dns.node'),
    import('@portage/migrate/backup.node'),
    import('@portage/migrate/terminal.node'),
    import('@portage/migrate/errors'),
  ]);
  const env = process.env;
  let asked: string | undefined;
  const password = async (server: string, role: 'current' | 'other'): Promise<string | undefined> => {
    // The "new" server is the one the DID points to, unless --to names the other end of a move
    // that did not reach the PLC yet.
    const isNew = str('to') ? role === 'other' : role === 'current';
    const given = isNew
      ? (env.PORTAGE_NEW_PASSWORD ?? env.PORTAGE_PASSWORD ?? env.PORTAGE_OLD_PASSWORD)
      : (env.PORTAGE_OLD_PASSWORD ?? env.PORTAGE_PASSWORD);
    if (given) return given;
    if (!interactive) return undefined;
    asked ??= (await prompt(`Password of ${from} (on ${server}; Enter to skip signing in): `, true)) || undefined;
    return asked;
  };
  try {
    const result = await runDoctor(
      {
        from,
        ...(str('to') ? { to: str('to') } : {}),
        ...(str('plc-url') ? { plcUrl: str('plc-url') } : {}),
        fix: values.fix === true,
      },
      {
        resolveTxt: nodeResolveTxt,
        password,
        backup: backupDir ? (did) => new DirectoryBackup(resolve(backupDir), did).open() : undefined,
        onProgress: (message) => {
          if (!json) process.stderr.write(`  fixed: ${message}\n`);
        },
      },
    );
    if (json) {
      process.stdout.write(`${JSON.stringify(wordedForScripts(result))}\n`);
    } else {
      const out: string[] = [result.before.summary];
      for (const f of result.before.findings) {
        out.push(`  ${f.severity === 'problem' ? '✗' : '•'} ${f.message}.`);
        if (f.repair && !values.fix) out.push(`      --fix would ${REPAIR_WORDS[f.repair]}.`);
        if (f.next) out.push(`      ${commandLineNextStep(f.next)}`);
      }
      if (result.repair?.stopped) {
        out.push(`The repairs stopped: ${result.repair.stopped}.`);
        if (result.repair.next) out.push(`  ${commandLineNextStep(result.repair.next)}`);
      }
      if (result.after) {
        out.push('', `After the repairs: ${result.after.summary}`);
        for (const f of result.after.findings) {
          out.push(`  ${f.severity === 'problem' ? '✗' : '•'} ${f.message}.`);
          if (f.next) out.push(`      ${commandLineNextStep(f.next)}`);
        }
      } else if (!result.healthy && !values.fix && result.before.repairs.length > 0) {
        out.push('Run the same command with --fix to make the repairs listed above.');
      }
      process.stdout.write(`${out.join('\n')}\n`);
    }
    return result.healthy ? 0 : 1;
  } catch (err) {
    if (err instanceof MigrationError) {
      process.stderr.write(`portage doctor: ${err.message}. ${commandLineNextStep(err.nextStep)}\n`);
      return 1;
    }
    throw err;
  }
}

/**
 * The result for --json: each next step worded for this command line in `next`, the engine's
 * typed step beside it in `nextStep` (as `portage migrate --json` does).
 */
function wordedForScripts(result: DoctorResult): unknown {
  const worded = (d: Diagnosis) => ({
    ...d,
    findings: d.findings.map((f) => (f.next ? { ...f, next: commandLineNextStep(f.next), nextStep: f.next } : f)),
  });
  return {
    ...result,
    before: worded(result.before),
    ...(result.after ? { after: worded(result.after) } : {}),
    ...(result.repair?.next
      ? { repair: { ...result.repair, next: commandLineNextStep(result.repair.next), nextStep: result.repair.next } }
      : {}),
  };
}

const REPAIR_WORDS = {
  'import-repo': 'import the repository from the backup or the other server',
  'upload-blobs': 'upload the missing blobs from the backup or the other server',
  'activate-current': 'activate the account the DID points to',
  'deactivate-other': 'deactivate the old account',
} as const;
