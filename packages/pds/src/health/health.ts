/**
 * Whether the server can do its work: each database answers a read through a fresh read-only
 * connection (so a file that is gone or unreadable is seen, not hidden by the server's open
 * connection), and the blob store can take a blob. `/xrpc/_health` answers 503 when a
 * check fails, as the reference does, so a load balancer stops sending requests.
 */
import Database from 'better-sqlite3';

export interface HealthReport {
  ok: boolean;
  /** The checks that failed, each named with what went wrong (empty when ok). */
  failures: string[];
}

export interface HealthChecks {
  /** Database files by name (account database, sequencer database). */
  databases: Record<string, string>;
  blobstore: { checkWritable(): Promise<void> };
}

function checkDatabase(name: string, path: string): string | undefined {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return undefined;
  } catch (err) {
    return `${name}: ${(err as Error).message}`;
  } finally {
    db?.close();
  }
}

export async function checkHealth(checks: HealthChecks): Promise<HealthReport> {
  const failures: string[] = [];
  for (const [name, path] of Object.entries(checks.databases)) {
    const failure = checkDatabase(name, path);
    if (failure) failures.push(failure);
  }
  await checks.blobstore
    .checkWritable()
    .catch((err: unknown) => failures.push(`blob store: ${(err as Error).message}`));
  return { ok: failures.length === 0, failures };
}
