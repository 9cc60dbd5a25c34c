/**
 * The user-held recovery key as a file (Node): hex private key, written once with mode 0600; the
 * wizard's downloaded key file reads too (recovery-key.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import type { RecoveryKeyStore } from './environment.ts';
import { MigrationError } from './errors.ts';
import { parseRecoveryKeyFile } from './recovery-key.ts';

export class FileRecoveryKeyStore implements RecoveryKeyStore {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<ExportableSigningKey | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return await parseRecoveryKeyFile(text, this.path);
    } catch (err) {
      throw new MigrationError(
        'InvalidRecoveryKey',
        `${this.path} does not hold a secp256k1 private key in hex`,
        'Give the key file from the earlier run, or a path that does not exist yet to make a new key.',
        { cause: err },
      );
    }
  }

  async save(key: ExportableSigningKey): Promise<string> {
    // 'wx': never overwrite a key the user may already rely on.
    await writeFile(this.path, `${key.privateKeyHex()}\n`, { mode: 0o600, flag: 'wx' });
    return this.path;
  }
}
