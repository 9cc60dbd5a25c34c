/** The pieces every screen of the wizard is made of: labelled fields, the action row, step rows. */
import { type MigrationEvent, STEP_TITLES, type ProgressFigures, type StepName } from '@portage/migrate';
import type { ComponentChildren, InputHTMLAttributes, Ref } from 'preact';
import { capitalized, describeProgress, sentence } from './format.ts';
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

/** A labelled one-line input; `plain` ones (handles, codes, addresses) are neither capitalized nor spell-checked. */
export function InputField(props: {
  label: string;
  hint?: string;
  value: string;
  onValue: (value: string) => void;
  type?: 'url' | 'email' | 'password';
  autocomplete?: 'username' | 'current-password' | 'new-password' | 'email' | 'one-time-code';
  autocapitalize?: 'none' | 'characters';
}) {
  // Preact types each input type apart; this one field serves several, so it says which it is.
  const kind = { type: props.type } as InputHTMLAttributes<HTMLInputElement>;
  return (
    <Field label={props.label} hint={props.hint}>
      {(id, hint) => (
        <input
          id={id}
          {...kind}
          aria-describedby={hint}
          value={props.value}
          onInput={(e) => props.onValue(e.currentTarget.value)}
          autocomplete={props.autocomplete}
          autocapitalize={props.autocapitalize}
          spellcheck={props.autocapitalize ? false : undefined}
        />
      )}
    </Field>
  );
}

/** The address of the server an account goes to, asked for where the page is not served by it. */
export function ServerAddressField(props: { going: string; value: string; onValue: (value: string) => void }) {
  return (
    <InputField
      label="New PDS"
      hint={`The address of the server to ${props.going}, like https://pds.example.com.`}
      type="url"
      value={props.value}
      onValue={props.onValue}
      autocapitalize="none"
    />
  );
}

export function InviteField(props: { serverName: string; value: string; onValue: (value: string) => void }) {
  return (
    <InputField
      label="Invite code"
      hint={`${capitalized(props.serverName)} asks for an invite code from its operator.`}
      value={props.value}
      onValue={props.onValue}
      autocapitalize="none"
    />
  );
}

/** What the handle field asks for: one of the server's domains, when it names any. */
export function handleHint(server: ServerInfo | undefined, otherwise: string): string {
  return server?.availableUserDomains.length
    ? `It must end in ${server.availableUserDomains.join(' or ')}. You can switch back to your own domain later.`
    : otherwise;
}

/** The top of every screen: where the user is, the heading focus moves to, the live region and the error. */
export function ScreenHead<S extends string>(props: {
  brand: string;
  screens: { screen: S; title: string }[];
  screen: S;
  heading: Ref<HTMLHeadingElement>;
  announcement: string;
  error: string | undefined;
}) {
  const index = props.screens.findIndex((s) => s.screen === props.screen);
  return (
    <>
      <p class="brand">{props.brand}</p>
      <p class="stepcount">
        Step {index + 1} of {props.screens.length}
      </p>
      <h1 tabIndex={-1} ref={props.heading}>
        {props.screens[index]!.title}
      </h1>
      <div role="status" aria-live="polite" class="visually-hidden">
        {props.announcement}
      </div>
      {props.error && (
        <p class="error" role="alert">
          {props.error}
        </p>
      )}
    </>
  );
}

/** A row with one secondary button that leaves the form for another way (restore, check, back). */
export function OtherWay(props: { label: string; disabled: boolean; onClick: () => void }) {
  return (
    <div class="actions">
      <button type="button" class="secondary" disabled={props.disabled} onClick={props.onClick}>
        {props.label}
      </button>
    </div>
  );
}

/** The account a page is about, by handle or DID. */
export function AccountField(props: { value: string; onValue: (value: string) => void }) {
  return (
    <InputField
      label="Handle or DID"
      hint="Like alice.bsky.social or did:plc:…"
      value={props.value}
      onValue={props.onValue}
      autocomplete="username"
      autocapitalize="none"
    />
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

export type Phases = Partial<Record<StepName, Phase>>;

/** The step rows after one engine event; other events leave them as they are. */
export function phasesAfter(phases: Phases, event: MigrationEvent): Phases {
  switch (event.type) {
    case 'step-started':
      return { ...phases, [event.step]: { state: 'running' } };
    case 'step-progress': {
      const { type: _t, step, ...figures } = event;
      return { ...phases, [step]: { ...phases[step], state: 'running', progress: figures } };
    }
    case 'step-done':
      return {
        ...phases,
        [event.step]: { ...phases[event.step], state: event.skipped ? 'skipped' : 'done', summary: event.summary },
      };
    case 'step-failed':
      return { ...phases, [event.step]: { ...phases[event.step], state: 'failed' } };
    default:
      return phases;
  }
}
