/**
 * Each account's repository signing key, kept next to its store as a 0600 file. The actor store
 * owns it because only commits use it, and an account's directory then holds everything needed
 * to move or restore the repository.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { type ExportableSigningKey, importSigningKey, type KeyAlgorithm } from '@portage/atproto/crypto';

interface KeyFile {
  algorithm: KeyAlgorithm;
  privateKeyHex: string;
}

export async function writeSigningKeyFile(path: string, key: ExportableSigningKey): Promise<void> {
  const content: KeyFile = { algorithm: key.algorithm, privateKeyHex: key.privateKeyHex() };
  await writeFile(path, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'w' });
}

export async function readSigningKeyFile(path: string): Promise<ExportableSigningKey> {
  const content = JSON.parse(await readFile(path, 'utf8')) as KeyFile;
  return importSigningKey(content.privateKeyHex, content.algorithm);
}
