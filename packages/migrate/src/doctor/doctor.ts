/**
 * `portage doctor` as one call: inspect, diagnose and, when asked, repair and look again, so the
 * verdict after a repair is read from the servers, never assumed.
 */
import { type Diagnosis, diagnose } from './diagnose.ts';
import { type InspectEnvironment, type InspectOptions, inspectAccount } from './inspect.ts';
import { type RepairBackup, type RepairOutcome, repairAccount } from './repair.ts';

export interface DoctorOptions extends InspectOptions {
  fix?: boolean;
}

export interface DoctorEnvironment extends InspectEnvironment {
  backup?(did: string): Promise<RepairBackup | undefined>;
  onProgress?(message: string): void;
}

export interface DoctorResult {
  did: string;
  before: Diagnosis;
  repair?: RepairOutcome;
  /** The diagnosis read again after the repairs (only with `fix` and something to repair). */
  after?: Diagnosis;
  healthy: boolean;
}

export async function runDoctor(opts: DoctorOptions, env: DoctorEnvironment): Promise<DoctorResult> {
  const inspection = await inspectAccount(opts, env);
  const before = diagnose(inspection);
  if (!opts.fix || before.repairs.length === 0) {
    return { did: inspection.did, before, healthy: before.healthy };
  }
  const repair = await repairAccount(inspection, before.repairs, {
    ...(env.fetch ? { fetch: env.fetch } : {}),
    backup: await env.backup?.(inspection.did),
    onProgress: env.onProgress ?? (() => {}),
  });
  const after = diagnose(await inspectAccount(opts, env));
  return { did: inspection.did, before, repair, after, healthy: after.healthy };
}
