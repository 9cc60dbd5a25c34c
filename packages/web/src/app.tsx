/**
 * The wizard: one screen at a time, in the order a move happens. The engine (@portage/migrate)
 * does the work and reports it as events; it asks for what only the user knows (passwords, the
 * emailed codes) through callbacks, which this page answers from its forms. Passwords live in
 * this component's memory only and are gone with the tab.
 */
import {
  migrate,
  type MigrationEvent,
  type MigrationStatus,
  type NextStep,
  STEP_TITLES,
  type StepName,
} from '@portage/migrate';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import { dohResolveTxt } from '@portage/atproto/identity/dns-over-https';
import { normalizeServiceUrl } from '@portage/atproto/identity/did-document';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PageConfig } from './config.ts';
import { formatBytes, sentence } from './format.ts';
import {
  AccountField,
  Actions,
  handleHint,
  InputField,
  OtherWay,
  InviteField,
  type Phases,
  phasesAfter,
  PhaseRow,
  ScreenHead,
  ServerAddressField,
  ServerFacts,
} from './parts.tsx';
import { wizardFailure } from './messages.ts';
import {
  type Account,
  describeServer,
  resolveAccount,
  type ServerInfo,
  suggestHandle,
  WizardError,
} from './resolve.ts';
import type { AuthorizationServer } from '@portage/atproto/oauth/metadata';
import type { OAuthSession } from '@portage/atproto/oauth/session';
import { clientIdentity, findAuthorizationServer, type OAuthSignIn, signInFailure, signInWithServer } from './oauth.ts';
import { CheckWizard } from './check.tsx';
import { RestoreWizard } from './restore.tsx';
import { backupName } from './storage/backup.ts';
import type { BrowserStorage } from './storage/choose.ts';

type Screen = 'who' | 'signin' | 'account' | 'transfer' | 'verify' | 'identity' | 'done';

const SCREENS: { screen: Screen; title: string }[] = [
  { screen: 'who', title: 'Who you are' },
  { screen: 'signin', title: 'Sign in to your current server' },
  { screen: 'account', title: 'Your new account' },
  { screen: 'transfer', title: 'Moving your data' },
  { screen: 'verify', title: 'Everything arrived' },
  { screen: 'identity', title: 'Point your identity at the new server' },
  { screen: 'done', title: 'Done' },
];

/** The engine steps shown while data moves; the ones with a bar report progress figures. */
const TRANSFER_STEPS: StepName[] = [
  'login-old',
  'checks',
  'create-account',
  'repo',
  'blobs',
  'preferences',
  'backup',
  'verify',
];

/** What the page keeps between visits to offer a resume: no secret, only what the form showed. */
interface Remembered {
  did: string;
  handle?: string;
  target: string;
  newHandle: string;
  email: string;
}

interface Failed {
  step: StepName;
  message: string;
  next: NextStep;
}

const rememberedKey = (did: string) => `wizard-${did}`;

export function App({ config, storage }: { config: PageConfig; storage: BrowserStorage }) {
  const [screen, setScreenState] = useState<Screen>('who');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [who, setWho] = useState('');
  const [account, setAccount] = useState<Account>();
  const [password, setPassword] = useState('');
  /** The old server's OAuth, when it offers one this page can use (the password is the fallback). */
  const [authServer, setAuthServer] = useState<AuthorizationServer>();
  /** The OAuth session with the old server: in memory only, like the passwords. */
  const oauthSession = useRef<OAuthSession>(undefined);
  const [oauthSignedIn, setOauthSignedIn] = useState(false);
  const [oauthWaiting, setOauthWaiting] = useState<OAuthSignIn>();
  const [signinCode, setSigninCode] = useState<string>();
  const [target, setTarget] = useState(config.target ?? '');
  const [server, setServer] = useState<ServerInfo>();
  const [newHandle, setNewHandle] = useState('');
  const [email, setEmail] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [invite, setInvite] = useState('');
  const [phases, setPhases] = useState<Phases>({});
  const [announcement, setAnnouncement] = useState('');
  const [notice, setNotice] = useState<string>();
  const [warnings, setWarnings] = useState<string[]>([]);
  const [wantRecoveryKey, setWantRecoveryKey] = useState(true);
  /** The recovery key made for this run: shown once, kept in memory only, never stored. */
  const [recovery, setRecovery] = useState<{ did: string; hex: string }>();
  const recoveryKey = useRef<ExportableSigningKey>(undefined);
  const [backupDeleted, setBackupDeleted] = useState(false);
  const [plcCode, setPlcCode] = useState('');
  const [result, setResult] = useState<{ status: MigrationStatus; message: string }>();
  const [room, setRoom] = useState<string>();
  const [offers, setOffers] = useState<Remembered[]>([]);
  const [resuming, setResuming] = useState(false);
  /** "My old server is gone": the restore from a backup instead of a move. */
  const [restoring, setRestoring] = useState(false);
  /** "A move stopped halfway elsewhere": the doctor's check and repairs instead of a move. */
  const [checking, setChecking] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  /** Answers to the engine's questions, waiting for the form that gives them. */
  const waiting = useRef<{ signinCode?: (code: string) => void; plc?: (code: string) => void }>({});
  const lastFailure = useRef<Failed>(undefined);
  const announced = useRef<Partial<Record<StepName, number>>>({});

  const setScreen = (next: Screen) => {
    setScreenState(next);
    setBusy(false);
  };

  // Move focus to the new screen's heading, so keyboard and screen-reader users start there.
  useEffect(() => heading.current?.focus(), [screen]);

  useEffect(() => {
    void findUnfinished(storage).then(setOffers);
    if (config.target) {
      describeServer(config.target).then(setServer, (err: unknown) => setError(messageOf(err)));
    }
    void storage.estimate().then((e) => {
      setRoom(
        e
          ? `Progress${storage.openBackup ? ' and a backup of your account are' : ' is'} kept in ${storage.describe()}: ${formatBytes(e.usage)} used, ${formatBytes(e.free)} free.`
          : `Progress is kept in ${storage.describe()}.`,
      );
    });
  }, []);

  // ---- who ----------------------------------------------------------------------------------

  async function submitWho(e: Event) {
    e.preventDefault();
    if (!who.trim()) return setError('Enter your handle (like alice.bsky.social) or your DID, then press Continue.');
    setBusy(true);
    setError(undefined);
    try {
      const found = await resolveAccount(who, config);
      setAccount(found);
      const remembered = await loadRemembered(storage, found.did);
      if (remembered) {
        setNewHandle(remembered.newHandle);
        setEmail(remembered.email);
        if (!config.target) setTarget(remembered.target);
      } else if (!newHandle && found.handle) {
        setNewHandle(suggestHandle(found.handle, server));
      }
      setScreen('signin');
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  }

  function resume(offer: Remembered) {
    setWho(offer.handle ?? offer.did);
    setResuming(true);
    setError(undefined);
    setBusy(true);
    resolveAccount(offer.did, config).then(
      (found) => {
        setAccount(found);
        setNewHandle(offer.newHandle);
        setEmail(offer.email);
        if (!config.target) setTarget(offer.target);
        setScreen('signin');
      },
      (err: unknown) => {
        setError(messageOf(err));
        setBusy(false);
      },
    );
  }

  // The old server's authorization server, looked up as soon as the account is known.
  const client = clientIdentity(config);
  useEffect(() => {
    setAuthServer(undefined);
    oauthSession.current = undefined;
    setOauthSignedIn(false);
    if (account && client) void findAuthorizationServer(account.pds).then(setAuthServer);
  }, [account?.did, account?.pds]);

  // The repository export is public: it downloads into the backup while the person signs in and
  // fills in the new account, and the run imports it from there.
  // Not when the account already lives on the server this page moves it to (a move resumed after
  // the identity update): there is nothing to import then.
  useEffect(() => {
    if (!account || (config.target && normalizeServiceUrl(account.pds) === normalizeServiceUrl(config.target))) return;
    storage.downloadRepoEarly(account.did, account.pds);
  }, [account?.did, account?.pds]);

  // ---- sign in ------------------------------------------------------------------------------

  /** The sign-in under way; an answer for an older one (pressed again, cancelled) is ignored. */
  const currentSignIn = useRef<OAuthSignIn>(undefined);

  function signInWithOldServer() {
    if (!account || !authServer || !client) return;
    setError(undefined);
    // Pressed again (say, after closing the window): the earlier sign-in is dropped.
    const earlier = currentSignIn.current;
    currentSignIn.current = undefined;
    earlier?.cancel();
    const signIn = signInWithServer({
      server: authServer,
      client,
      did: account.did,
      loginHint: account.handle ?? account.did,
    });
    currentSignIn.current = signIn;
    setOauthWaiting(signIn);
    setAnnouncement('A sign-in window opened. Finish signing in there.');
    signIn.done.then(
      (session) => {
        if (currentSignIn.current !== signIn) return;
        currentSignIn.current = undefined;
        oauthSession.current = session;
        setOauthSignedIn(true);
        setOauthWaiting(undefined);
        setAnnouncement('Signed in to your current server.');
        setScreen('account');
      },
      (err: unknown) => {
        if (currentSignIn.current !== signIn) return;
        currentSignIn.current = undefined;
        setOauthWaiting(undefined);
        const text = signInFailure(err, new URL(account.pds).host, account.handle ?? account.did);
        setError(text);
        setAnnouncement(text);
        heading.current?.focus();
      },
    );
  }

  function submitSignin(e: Event) {
    e.preventDefault();
    if (oauthSession.current && !password) {
      setError(undefined);
      setScreen('account');
      return;
    }
    if (!password) return setError('Enter the password of your account on your current server, then press Continue.');
    if (waiting.current.signinCode) {
      if (!signinCode?.trim()) return setError('Enter the code from the email, then press Continue.');
      const answer = waiting.current.signinCode;
      waiting.current.signinCode = undefined;
      setError(undefined);
      setScreen('transfer');
      answer(signinCode.trim());
      return;
    }
    setError(undefined);
    setScreen('account');
  }

  // ---- the new account ----------------------------------------------------------------------

  async function submitAccount(e: Event) {
    e.preventDefault();
    setError(undefined);
    const to = normalizeServiceUrl(target.trim());
    if (!to)
      return setError('Enter the address of the new PDS, like https://pds.example.com, then press Start transfer.');
    if (!newHandle.trim()) return setError('Choose a handle for the new account, then press Start transfer.');
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) {
      return setError('Enter an email address for the new account, then press Start transfer.');
    }
    if (!newPassword) return setError('Choose a password for the new account, then press Start transfer.');
    setBusy(true);
    let info = server;
    if (!config.target || !info) {
      try {
        info = await describeServer(to);
        setServer(info);
      } catch (err) {
        setBusy(false);
        return setError(messageOf(err));
      }
    }
    if (info.inviteCodeRequired && !invite.trim()) {
      setBusy(false);
      return setError(
        'This server needs an invite code. Enter the one its operator gave you, then press Start transfer.',
      );
    }
    await start(to);
  }

  // ---- the run ------------------------------------------------------------------------------

  async function start(to = normalizeServiceUrl(target.trim())!) {
    const acct = account!;
    setError(undefined);
    setNotice(undefined);
    setWarnings([]);
    setPhases({});
    announced.current = {};
    lastFailure.current = undefined;
    setScreen('transfer');
    setBusy(true);
    await storage.persist();
    await saveRemembered(storage, {
      did: acct.did,
      handle: acct.handle,
      target: to,
      newHandle: newHandle.trim().toLowerCase(),
      email: email.trim(),
    }).catch(() => {});
    const outcome = await migrate(
      {
        from: acct.did,
        to,
        plcUrl: config.plcUrl,
        newHandle: newHandle.trim().toLowerCase(),
        newEmail: email.trim(),
        ...(invite.trim() ? { inviteCode: invite.trim() } : {}),
      },
      {
        storage: storage.journal,
        onEvent,
        resolveTxt: dohResolveTxt({ endpoint: config.dohUrl }),
        openBackup: storage.openBackup,
        // The engine makes the key just before the identity update; the page shows it on the
        // verification screen, before the user confirms the update with the emailed code.
        recoveryKey: wantRecoveryKey
          ? {
              load: async () => recoveryKey.current,
              save: async (key) => {
                recoveryKey.current = key;
                setRecovery({ did: key.did(), hex: key.privateKeyHex() });
                return 'this page';
              },
            }
          : undefined,
        credentials: {
          // A password typed after the OAuth sign-in means the user chose it instead.
          oldSession: async () => (password ? undefined : oauthSession.current),
          oldPassword: async () => password,
          newPassword: async () => newPassword,
          authFactorToken: () =>
            new Promise<string>((answer) => {
              waiting.current.signinCode = answer;
              setSigninCode('');
              setError(undefined);
              setNotice('Your current server emailed you a sign-in code. Enter it below and press Continue.');
              setScreen('signin');
            }),
          plcToken: async (requested) => {
            if (!requested) return undefined;
            return new Promise<string>((answer) => {
              waiting.current.plc = answer;
              setPlcCode('');
              setScreenState((s) => (s === 'identity' ? 'identity' : 'verify'));
              setBusy(false);
            });
          },
        },
      },
    );
    waiting.current = {};
    if (outcome.status === 'done' || outcome.status === 'done-old-still-active') {
      setResult({ status: outcome.status, message: outcome.message });
      setAnnouncement('The move is complete.');
      setScreen('done');
      return;
    }
    // Set by onEvent while the run went on (the compiler cannot see that through the closure).
    const failure = lastFailure.current as Failed | undefined;
    const f = failure
      ? wizardFailure(failure.step, failure.message, failure.next)
      : outcome.next
        ? wizardFailure('blobs', outcome.message, outcome.next)
        : { screen: 'transfer' as const, text: sentence(outcome.message) };
    if (failure?.next.kind === 'need-input' && failure.next.field === 'oldPassword') {
      setPassword('');
      if (failure.next.reason === 'signed-out') {
        oauthSession.current = undefined;
        setOauthSignedIn(false);
      }
    }
    setError(f.text);
    setAnnouncement(f.text);
    setScreen(f.screen);
  }

  function onEvent(event: MigrationEvent) {
    setPhases((p) => phasesAfter(p, event));
    // Each step's start and end in the browser's user timing: profilers and the wizard benchmark show them.
    if (event.type === 'step-started' || event.type === 'step-done') {
      performance.mark(`portage:${event.step}:${event.type === 'step-started' ? 'start' : 'end'}`);
    }
    switch (event.type) {
      case 'step-started':
        if (TRANSFER_STEPS.includes(event.step)) setAnnouncement(`${event.title}: started.`);
        break;
      case 'step-progress': {
        const { step, done, total } = event;
        if (total) {
          const quarter = Math.floor((done / total) * 4);
          if (quarter > (announced.current[step] ?? 0) && quarter < 4) {
            announced.current[step] = quarter;
            setAnnouncement(`${STEP_TITLES[step]}: ${quarter * 25}% done.`);
          }
        }
        break;
      }
      case 'step-done':
        if (TRANSFER_STEPS.includes(event.step)) setAnnouncement(`${STEP_TITLES[event.step]}: done.`);
        break;
      case 'step-failed':
        lastFailure.current = { step: event.step, message: event.message, next: event.nextStep };
        break;
      case 'warning':
        setWarnings((w) => [...w, sentence(event.message)]);
        break;
      case 'notice':
        // The recovery key's notice is worded for a terminal; the page shows the key its own way.
        if (event.secret) break;
        if (event.step === 'identity') {
          if (/did not accept/i.test(event.message)) {
            setError(
              'Your current server did not accept that code. Your identity was not changed and all data stays copied. ' +
                'It emailed you a new code: enter the newest one and press Confirm.',
            );
            setAnnouncement('The code was not accepted; a new one was emailed.');
          } else {
            setNotice(
              'Your current server emailed you a confirmation code (like ABCDE-12345). It is valid for about 15 minutes.',
            );
          }
        }
        break;
      default:
        break;
    }
  }

  function submitIdentity(e: Event) {
    e.preventDefault();
    const answer = waiting.current.plc;
    if (!answer) {
      // The run stopped (a failure here): start it again, which has a new code emailed.
      void start();
      return;
    }
    if (!plcCode.trim()) return setError('Enter the code from the email, then press Confirm.');
    waiting.current.plc = undefined;
    setError(undefined);
    setBusy(true);
    answer(plcCode.trim());
  }

  async function downloadBackup() {
    const archive = await storage.exportBackup(account!.did);
    if (!archive) {
      setError('This browser holds no backup of the account. Nothing to download.');
      return;
    }
    const url = URL.createObjectURL(archive);
    const link = document.createElement('a');
    link.href = url;
    link.download = `${backupName(account!.did)}.tar`;
    link.click();
    // The save dialog reads the Blob through its URL; freeing it at once could cut the download.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  // ---- rendering ----------------------------------------------------------------------------

  if (restoring) {
    return (
      <RestoreWizard
        config={config}
        storage={storage}
        server={server}
        onBack={() => {
          setRestoring(false);
          setError(undefined);
        }}
      />
    );
  }

  if (checking) {
    return (
      <CheckWizard
        config={config}
        onBack={() => {
          setChecking(false);
          setError(undefined);
        }}
      />
    );
  }

  const targetName = config.target ? 'this server' : 'the new server';

  return (
    <main>
      <ScreenHead
        brand={config.target ? `Move your account to ${location.host}` : 'Move your AT Protocol account'}
        screens={SCREENS}
        screen={screen}
        heading={heading}
        announcement={announcement}
        error={error}
      />

      {screen === 'who' && (
        <form onSubmit={submitWho} noValidate>
          {offers.map((o) => (
            <div class="offer" key={o.did}>
              <p>
                Moving {o.handle ?? o.did} to {o.target} did not finish. You can pick it up where it stopped.
              </p>
              <button type="button" onClick={() => resume(o)} disabled={busy}>
                Resume moving {o.handle ?? o.did}
              </button>
            </div>
          ))}
          <p>Enter the account you want to move{config.target ? ` to ${location.host}` : ''}.</p>
          {server && <ServerFacts server={server} name={targetName} />}
          <AccountField value={who} onValue={setWho} />
          <Actions busy={busy} label="Continue" />
          <div class="gone">
            <p>Your old server is gone, and you kept a backup and a recovery key?</p>
            <OtherWay
              label="My old server is gone"
              disabled={busy}
              onClick={() => {
                setError(undefined);
                setRestoring(true);
              }}
            />
            <p>A move stopped halfway, in another browser, on the command line or with another tool?</p>
            <OtherWay
              label="Check an account"
              disabled={busy}
              onClick={() => {
                setError(undefined);
                setChecking(true);
              }}
            />
          </div>
        </form>
      )}

      {screen === 'signin' && account && (
        <form onSubmit={submitSignin} noValidate>
          <dl class="facts">
            <dt>Account</dt>
            <dd>{account.handle ?? account.did}</dd>
            <dt>DID</dt>
            <dd class="mono">{account.did}</dd>
            <dt>Current server</dt>
            <dd class="mono">{account.pds}</dd>
          </dl>
          {resuming && <p>Sign in again to pick up the move: passwords are never stored.</p>}
          {client && authServer && signinCode === undefined && (
            <div class="oauth">
              <p>
                <strong>Recommended:</strong> sign in on {new URL(account.pds).host} itself and allow the move there.
                This page never sees your password.
              </p>
              {oauthSignedIn && (
                <p class="notice" role="status">
                  Signed in with your current server. Press Continue, or sign in again.
                </p>
              )}
              <div class="actions">
                <button type="button" onClick={signInWithOldServer} disabled={busy}>
                  Sign in with your server
                </button>
              </div>
              {oauthWaiting && (
                <div class="waiting" role="status">
                  <p>Finish signing in in the window that opened, then come back here.</p>
                  <button type="button" class="secondary" onClick={() => oauthWaiting.cancel()}>
                    Cancel the sign-in
                  </button>
                </div>
              )}
              <p class="or">Or sign in with your password:</p>
            </div>
          )}
          {notice && signinCode !== undefined && (
            <p class="notice" role="status">
              {notice}
            </p>
          )}
          <InputField
            label="Password"
            hint="The password of this account on its current server (not an app password)."
            type="password"
            value={password}
            onValue={setPassword}
            autocomplete="current-password"
          />
          {signinCode !== undefined && (
            <InputField
              label="Confirmation code"
              hint="The sign-in code your current server emailed you."
              value={signinCode}
              onValue={setSigninCode}
              autocomplete="one-time-code"
              autocapitalize="characters"
            />
          )}
          <Actions busy={busy} label="Continue" />
        </form>
      )}

      {screen === 'account' && account && (
        <form onSubmit={submitAccount} noValidate>
          {!config.target && (
            <ServerAddressField
              going="move to"
              value={target}
              onValue={(value) => {
                setTarget(value);
                setServer(undefined);
              }}
            />
          )}
          {server && <ServerFacts server={server} name={targetName} />}
          <InputField
            label="New handle"
            hint={handleHint(server, 'Your handle on the new server. You can switch back to your own domain later.')}
            value={newHandle}
            onValue={setNewHandle}
            autocapitalize="none"
          />
          <InputField
            label="Email"
            hint="The new server sends its messages (like sign-in codes) here."
            type="email"
            value={email}
            onValue={setEmail}
            autocomplete="email"
          />
          <InputField
            label="New password"
            hint="The password for the new account. It can be the same as the old one; it is not stored in this browser."
            type="password"
            value={newPassword}
            onValue={setNewPassword}
            autocomplete="new-password"
          />
          {(server?.inviteCodeRequired || invite) && (
            <InviteField serverName={targetName} value={invite} onValue={setInvite} />
          )}
          <div class="field checkbox">
            <input
              id="f-recovery-key"
              type="checkbox"
              checked={wantRecoveryKey}
              onChange={(e) => setWantRecoveryKey(e.currentTarget.checked)}
              aria-describedby="f-recovery-key-hint"
            />
            <label for="f-recovery-key">Add a recovery key that only you hold (recommended)</label>
            <p class="hint" id="f-recovery-key-hint">
              It is made in this browser and shown to you once, never stored. With it you can take your account back
              even if the new server disappears.
            </p>
          </div>
          {room && <p class="hint">{room}</p>}
          <Actions busy={busy} label="Start transfer" />
        </form>
      )}

      {screen === 'transfer' && (
        <div>
          <p>
            Your data is copied to {targetName}. Keep this tab open; if it closes, open this page again to pick up where
            it stopped.
          </p>
          {warnings.length > 0 && (
            <ul class="warnings">
              {warnings.map((w, i) => (
                <li key={i}>{w}</li>
              ))}
            </ul>
          )}
          <ol class="phases">
            {TRANSFER_STEPS.filter((s) => s !== 'backup' || storage.openBackup).map((step) => (
              <PhaseRow key={step} step={step} phase={phases[step]} />
            ))}
          </ol>
          {!busy && (
            <form
              onSubmit={(e) => {
                e.preventDefault();
                void start();
              }}
            >
              <Actions busy={false} label="Continue" />
            </form>
          )}
        </div>
      )}

      {screen === 'verify' && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setError(undefined);
            setScreen('identity');
          }}
        >
          <p>Everything was copied and checked against your current server:</p>
          <ul class="report">
            {(['repo', 'blobs', 'preferences', 'verify'] as const).map((s) =>
              phases[s]?.summary ? (
                <li key={s}>
                  <strong>{STEP_TITLES[s]}:</strong> {sentence(phases[s]!.summary!)}
                </li>
              ) : null,
            )}
          </ul>
          {recovery && (
            <div class="recovery">
              <h2>Your recovery key</h2>
              <p>
                Keep it somewhere safe and offline, like a password manager: it is shown only now, and this page does
                not store it. With it you can take your account back even if the new server disappears.
              </p>
              <p class="mono key">{recovery.hex}</p>
              <p class="hint">
                Its public form, which your identity will list first: <span class="mono">{recovery.did}</span>
              </p>
              <div class="actions">
                <button type="button" onClick={() => downloadText(`recovery-key-${account!.did}.txt`, recovery)}>
                  Download the recovery key
                </button>
              </div>
            </div>
          )}
          <p>
            One step is left: pointing your identity at {targetName}. Nothing else changes until you confirm it with the
            code your current server just emailed you.
          </p>
          <Actions busy={false} label="Continue" />
        </form>
      )}

      {screen === 'identity' && (
        <form onSubmit={submitIdentity} noValidate>
          {notice && <p>{notice}</p>}
          <InputField
            label="Confirmation code"
            hint="From the email your current server sent, like ABCDE-12345."
            value={plcCode}
            onValue={setPlcCode}
            autocomplete="one-time-code"
            autocapitalize="characters"
          />
          <Actions busy={busy} label={waiting.current.plc || busy ? 'Confirm' : 'Continue'} />
          {busy && (
            <ol class="phases">
              {(['identity', 'activate', 'deactivate-old'] as const).map((step) => (
                <PhaseRow key={step} step={step} phase={phases[step]} />
              ))}
            </ol>
          )}
        </form>
      )}

      {screen === 'done' && result && (
        <div>
          <p class="success">
            {result.status === 'done'
              ? `Your account now lives on ${targetName}: the new account is active and the old one is deactivated.`
              : `Your account now lives on ${targetName} and is active there, but the old account could not be deactivated.`}
          </p>
          <h2>What to do next</h2>
          <ul>
            <li>
              Sign out of your apps and sign in again with {newHandle || 'your handle'} and your new password. If the
              app asks for a hosting provider, give {target || location.origin}.
            </li>
            <li>Your followers, posts and media moved with you; nobody needs to do anything.</li>
            {oauthSignedIn && !password && (
              <li>
                Check your birth date in your app: your old server may not share personal details when you sign in with
                it instead of your password.
              </li>
            )}
            {result.status !== 'done' && (
              <li>Open this page again later to retry deactivating the old account; your data is safe either way.</li>
            )}
            {recovery && <li>Keep your recovery key offline; you will need it only if the new server fails you.</li>}
            <li>
              {storage.openBackup ? 'Save your backup below, then you can close this tab.' : 'You can close this tab.'}
            </li>
          </ul>
          {storage.openBackup && (
            <>
              <h2>Your backup</h2>
              <p>
                This browser kept a copy of your repository, media and preferences. Save it: it is the folder{' '}
                <code>portage backup</code> writes, packed as one .tar file, and it needs neither server.
              </p>
              {backupDeleted ? (
                <p>The copy in this browser is deleted.</p>
              ) : (
                <>
                  <div class="actions">
                    <button type="button" onClick={() => void downloadBackup()}>
                      Download the backup
                    </button>
                  </div>
                  <p>Once it is saved, you can delete the copy this browser keeps:</p>
                  <div class="actions">
                    <button
                      type="button"
                      class="secondary"
                      onClick={() =>
                        void storage.deleteBackup(account!.did).then(() => {
                          setBackupDeleted(true);
                          setAnnouncement('The copy in this browser is deleted.');
                        })
                      }
                    >
                      Delete the copy in this browser
                    </button>
                  </div>
                </>
              )}
            </>
          )}
        </div>
      )}
    </main>
  );
}

function messageOf(err: unknown): string {
  if (err instanceof WizardError) return err.message;
  return 'Something went wrong on the way. Check your connection and press Continue again.';
}

async function saveRemembered(storage: BrowserStorage, r: Remembered): Promise<void> {
  await storage.journal.set(rememberedKey(r.did), JSON.stringify(r));
}

async function loadRemembered(storage: BrowserStorage, did: string): Promise<Remembered | undefined> {
  try {
    const text = await storage.journal.get(rememberedKey(did));
    return text ? (JSON.parse(text) as Remembered) : undefined;
  } catch {
    return undefined;
  }
}

/** Moves this browser started and did not finish (the old account not yet deactivated). */
async function findUnfinished(storage: BrowserStorage): Promise<Remembered[]> {
  const out: Remembered[] = [];
  try {
    for (const key of await storage.journal.keys()) {
      if (!key.startsWith('wizard-')) continue;
      const did = key.slice('wizard-'.length);
      const remembered = await loadRemembered(storage, did);
      const journal = JSON.parse((await storage.journal.get(`migration-${did}`)) ?? 'null') as {
        oldDeactivatedAt?: string;
      } | null;
      if (remembered && !journal?.oldDeactivatedAt) out.push(remembered);
    }
  } catch {
    // An unreadable store offers nothing to resume; a fresh move still works.
  }
  return out;
}

/** Offers the recovery key as a text file, made in memory and never written anywhere by the page. */
function downloadText(name: string, key: { did: string; hex: string }): void {
  const text =
    `AT Protocol account recovery key (secp256k1, hex private key). Keep it secret and offline.\n` +
    `private key: ${key.hex}\npublic key: ${key.did}\n`;
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name.replace(/[^a-zA-Z0-9.-]/g, '_');
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
