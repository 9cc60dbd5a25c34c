/**
 * Checking a backup folder in Node: the check itself is backup-check.ts; this reads its files.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  type BackupFiles,
  type BackupReport,
  backupDid,
  checkBackup,
  type VerifyBackupOptions,
} from './backup-check.ts';

export type { BackupReport, VerifyBackupOptions } from './backup-check.ts';

/** A backup folder's files. */
export class FolderBackupFiles implements BackupFiles {
  readonly where: string;
  constructor(dir: string) {
    this.where = dir;
  }

  async read(path: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const file = join(this.where, ...path.split('/'));
    try {
      if (!(await stat(file)).isFile()) return undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'ENOTDIR')
        return undefined;
      throw err;
    }
    return Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
  }

  async list(folder: string): Promise<string[]> {
    try {
      return await readdir(join(this.where, ...folder.split('/')));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
  }
}

export function verifyBackup(dir: string, opts: VerifyBackupOptions = {}): Promise<BackupReport> {
  return checkBackup(new FolderBackupFiles(dir), opts);
}

/** The account a backup folder is of (its manifest), or a sentence saying why it is not a backup. */
export function backupAccountDid(dir: string): Promise<string> {
  return backupDid(new FolderBackupFiles(dir));
}
