/** The pieces every screen of the wizard is made of: labelled fields, the action row, step rows. */
import { STEP_TITLES, type ProgressFigures, type StepName } from '@portage/migrate';
import type { ComponentChildren } from 'preact';
import { describeProgress, sentence } from './format.ts';
import type { ServerInfo } from './resolve.ts';

/** Steps whose row shows a bar (they report progress figures). */
const WITH_BAR = new Set<StepName>(['repo', 'blobs', 'backup']);

export interface Phase {
  state: 'waiting' | 'running' | 'done' | 'skipped' | 'failed';
  progress?: ProgressFigures;
  summary?: string;
}

export function Field(props: {
  label: string;
  hint?: string;
  children: (id: string, hint?: string) => ComponentChildren;
}) {
  const id = `f-${props.label.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  const hintId = props.hint ? `${id}-hint` : undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.hint && (
        <p class="hint" id={hintId}>
          {props.hint}
        </p>
      )}
      {props.children(id, hintId)}
    </div>
  );
}

export function Actions({ busy, label }: { busy: boolean; label: string }) {
  return (
    <div class="actions">
      <button type="submit" disabled={busy} aria-disabled={busy}>
        {label}
      </button>
      {busy && <span class="working">Working…</span>}
    </div>
  );
}

export function ServerFacts({ server, name }: { server: ServerInfo; name: string }) {
  return (
    <p class="hint">
      {sentence(
        `${name} gives handles ending in ${server.availableUserDomains.join(', ') || '(any domain you own)'}` +
          (server.inviteCodeRequired ? ', and asks for an invite code' : ', and needs no invite code'),
      )}
    </p>
  );
}

const STATE_WORDS: Record<Phase['state'], string> = {
  waiting: 'Waiting',
  running: 'Working',
  done: 'Done',
  skipped: 'Done',
  failed: 'Stopped',
};

export function PhaseRow({ step, phase }: { step: StepName; phase: Phase | undefined }) {
  const state = phase?.state ?? 'waiting';
  const p = phase?.progress;
  const id = `phase-${step}`;
  const max = p?.total ?? (state === 'done' ? 1 : undefined);
  const value = p ? p.done : state === 'done' ? 1 : undefined;
  return (
    <li class={`phase ${state}`}>
      <div class="phase-head">
        <span id={id}>{STEP_TITLES[step]}</span>
        <span class="phase-state">{STATE_WORDS[state]}</span>
      </div>
      {WITH_BAR.has(step) && state !== 'waiting' && (
        <progress aria-labelledby={id} max={max ?? 1} value={max === undefined ? undefined : Math.min(value!, max)} />
      )}
      {p && state === 'running' && <p class="figures">{describeProgress(p)}</p>}
      {phase?.summary && state !== 'running' && <p class="figures">{sentence(phase.summary)}</p>}
    </li>
  );
}
