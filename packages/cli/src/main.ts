/**
 * The `portage` command (started through ../bin/portage.js). Each subcommand is one file in
 * ./commands exporting `description` (one line for --help) and `run(args)` (resolves to the
 * process exit code), so adding a command never touches this dispatcher. --help loads every
 * command file, so a command file imports what its work needs inside `run`, once its command
 * line is known to be good: a start loads only what that command uses.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Command {
  description: string;
  run(args: string[]): Promise<number>;
}

const commandsDir = join(import.meta.dirname, 'commands');

function commandNames(): string[] {
  return readdirSync(commandsDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function loadCommand(name: string): Promise<Command> {
  return (await import(join(commandsDir, `${name}.ts`))) as Command;
}

async function printHelp(): Promise<void> {
  const lines = ['Usage: portage <command> [options]', '', 'Commands:'];
  for (const name of commandNames()) {
    const command = await loadCommand(name);
    lines.push(`  ${name.padEnd(10)} ${command.description}`);
  }
  lines.push('', 'Run `portage <command> --help` for the options of one command.');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    await printHelp();
    return name ? 0 : 2;
  }
  if (!commandNames().includes(name)) {
    process.stderr.write(`portage: unknown command "${name}". Run \`portage --help\` to see the commands.\n`);
    return 2;
  }
  const command = await loadCommand(name);
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`portage: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
