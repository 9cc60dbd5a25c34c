/**
 * The firehose events a migration produces (#identity, #account, #sync), sent through the
 * sequencer when the server has one. Typed by shape rather than by the sequencer class so
 * this module depends only on the three methods it calls. Events go in with no host
 * database (`null`): each is appended after the change it announces has committed, so a
 * consumer that reacts to it (e.g. fetches the repository) sees the new state.
 */
import type { Cid } from '@portage/atproto/cid';

export type HostingStatus = 'takendown' | 'suspended' | 'deleted' | 'deactivated';

export interface AccountEventSequencer {
  sequenceSync(host: null, data: { did: string; commit: Cid; commitBytes: Uint8Array; rev: string }): void;
  sequenceIdentity(host: null, data: { did: string; handle?: string }): void;
  sequenceAccount(host: null, data: { did: string; active: boolean; status?: HostingStatus }): void;
}

function isSequencer(value: unknown): value is AccountEventSequencer {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Record<string, unknown>;
  return (
    typeof s.sequenceSync === 'function' &&
    typeof s.sequenceIdentity === 'function' &&
    typeof s.sequenceAccount === 'function'
  );
}

/** The server's sequencer, when it runs one (`ctx.sequencer`), else undefined. */
export function sequencerOf(ctx: object): AccountEventSequencer | undefined {
  const candidate = (ctx as { sequencer?: unknown }).sequencer;
  return isSequencer(candidate) ? candidate : undefined;
}
