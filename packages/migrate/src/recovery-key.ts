/**
 * The recovery key file's text, read the same way by `portage restore` and the wizard: the hex
 * private key `portage migrate --recovery-key` writes (one line), or the text file the wizard
 * offers ("private key: <hex>" among its lines).
 */
import { type ExportableSigningKey, importSigningKey } from '@portage/atproto/crypto';
import { MigrationError } from './errors.ts';

/** The secp256k1 key in a recovery key file; `where` names the file in the sentence when it holds none. */
export async function parseRecoveryKeyFile(text: string, where: string): Promise<ExportableSigningKey> {
  const trimmed = text.trim();
  const hex = /^[0-9a-f]{64}$/i.test(trimmed) ? trimmed : /^private key:\s*([0-9a-f]{64})\s*$/im.exec(text)?.[1];
  try {
    if (!hex) throw new Error('no 64-digit hex private key in the file');
    return await importSigningKey(hex.toLowerCase(), 'secp256k1');
  } catch (err) {
    throw new MigrationError(
      'InvalidRecoveryKey',
      `${where} does not hold a secp256k1 private key in hex`,
      { kind: 'need-input', field: 'recoveryKey', reason: 'invalid', nothingChanged: true },
      { cause: err },
    );
  }
}
