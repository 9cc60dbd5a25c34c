/**
 * "Check an account": the doctor in the page, for a move that stopped halfway elsewhere (another
 * browser, the command line, another tool). It reads where the DID points and what each server of
 * the move holds, says what state the account is in, and, when asked, makes the safe repairs
 * (import what is missing, activate where the DID points, deactivate the other copy), then looks
 * again. Nothing is stored: the password lives in this component's memory only.
 */
import { dohResolveTxt } from '@portage/atproto/identity/dns-over-https';
import type { Diagnosis, Finding } from '@portage/migrate/doctor/diagnose';
import { type DoctorResult, runDoctor } from '@portage/migrate/doctor/doctor';
import { describeNextStep, MigrationError } from '@portage/migrate';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PageConfig } from './config.ts';
import { sentence } from './format.ts';
import { checkAdvice } from './messages.ts';
import { AccountField, Actions, InputField, OtherWay, ScreenHead } from './parts.tsx';

type Screen = 'check' | 'report';

const SCREENS: { screen: Screen; title: string }[] = [
  { screen: 'check', title: 'Check an account' },
  { screen: 'report', title: 'What the check found' },
];

export function CheckWizard(props: { config: PageConfig; onBack: () => void }) {
  const { config } = props;
  const [screen, setScreenState] = useState<Screen>('check');
  const [who, setWho] = useState('');
  const [password, setPassword] = useState('');
  const [otherPassword, setOtherPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  const [result, setResult] = useState<DoctorResult>();
  const heading = useRef<HTMLHeadingElement>(null);

  const setScreen = (next: Screen) => {
    setScreenState(next);
    setBusy(false);
  };
  useEffect(() => heading.current?.focus(), [screen]);

  /** Inspects (and with `fix`, repairs and inspects again) the account typed in. */
  async function check(fix: boolean) {
    setError(undefined);
    setBusy(true);
    setAnnouncement(fix ? 'Repairing the account.' : 'Checking the account.');
    try {
      const outcome = await runDoctor(
        { from: who.trim(), plcUrl: config.plcUrl, fix },
        {
          resolveTxt: dohResolveTxt({ endpoint: config.dohUrl }),
          // The server the identity names gets the first password; the other end of the move its own, if given.
          password: async (_server, role) =>
            (role === 'other' && otherPassword ? otherPassword : password) || undefined,
        },
      );
      setResult(outcome);
      const verdict = shown(outcome);
      setAnnouncement(summaryOf(verdict));
      setScreen('report');
    } catch (err) {
      const text =
        err instanceof MigrationError
          ? `${sentence(err.message)} ${describeNextStep(err.nextStep)}`
          : `${sentence(err instanceof Error ? err.message : String(err))} Check your connection and press Check again.`;
      setError(text);
      setAnnouncement(text);
      setBusy(false);
    }
  }

  function submit(e: Event) {
    e.preventDefault();
    if (!who.trim()) return setError('Enter the handle or DID of the account, then press Check.');
    void check(false);
  }

  const verdict = result && shown(result);
  /** What the last repair did, one sentence per thing. */
  const done = result?.repair?.done ?? [];
  return (
    <main>
      <ScreenHead
        brand="Check a move"
        screens={SCREENS}
        screen={screen}
        heading={heading}
        announcement={announcement}
        error={error}
      />
      {screen === 'check' && (
        <form onSubmit={submit} noValidate>
          <p>
            A move that stopped halfway, in another browser, on the command line or with another tool, can leave an
            account inactive, without some of its media, or live on two servers. This check reads where your identity
            points and what each server holds, and says what to do. It changes nothing unless you ask it to repair.
          </p>
          <AccountField value={who} onValue={setWho} />
          <InputField
            label="Password"
            hint="The account's password, to look at what only the account can see and to repair. Leave it empty to see only what is public."
            type="password"
            value={password}
            onValue={setPassword}
            autocomplete="current-password"
          />
          <InputField
            label="Password on the other server"
            hint="Only if the account has another password on the server your identity does not point to now."
            type="password"
            value={otherPassword}
            onValue={setOtherPassword}
            autocomplete="current-password"
          />
          <Actions busy={busy} label="Check" />
          <OtherWay label="Back to moving an account" disabled={busy} onClick={props.onBack} />
        </form>
      )}

      {screen === 'report' && result && verdict && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void check(true);
          }}
        >
          <p class={result.healthy ? 'success' : undefined}>{summaryOf(verdict)}</p>
          <Findings findings={verdict.findings} />
          {done.length > 0 && (
            <>
              <h2>What the repair did</h2>
              <ul>
                {done.map((line, i) => (
                  <li key={i}>{sentence(line)}</li>
                ))}
              </ul>
            </>
          )}
          {result.repair?.stopped && (
            <p class="error">
              {sentence(`the repair stopped: ${result.repair.stopped}`)}{' '}
              {result.repair.next ? describeNextStep(result.repair.next) : ''}
            </p>
          )}
          {!result.healthy && verdict.repairs.length > 0 && (
            <>
              <p>
                The check can repair this safely: it never changes your identity and deletes nothing. Press Repair to do
                it.
              </p>
              <Actions busy={busy} label="Repair" />
            </>
          )}
          <OtherWay
            label="Check again"
            disabled={busy}
            onClick={() => {
              setResult(undefined);
              setScreen('check');
            }}
          />
        </form>
      )}
    </main>
  );
}

/** The verdict as written: it opens with the account's handle, whose case is kept. */
function summaryOf(diagnosis: Diagnosis): string {
  const text = diagnosis.summary.trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** The diagnosis to show: the one read after a repair when there was one. */
function shown(result: DoctorResult): Diagnosis {
  return result.after ?? result.before;
}

function Findings({ findings }: { findings: Finding[] }) {
  const listed = findings.filter((f) => f.code !== 'healthy');
  if (!listed.length) return null;
  return (
    <ul class="findings">
      {listed.map((f) => (
        <li key={f.code}>
          <strong>{f.severity === 'problem' ? 'Problem' : 'Note'}:</strong> {sentence(f.message)}
          {f.next && !f.repair ? ` ${checkAdvice(f.next)}` : ''}
        </li>
      ))}
    </ul>
  );
}
