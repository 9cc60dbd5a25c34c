/**
 * "My old server is gone": the account comes back from a backup the user chose from disk (the
 * wizard's downloaded .tar, or the unpacked folder) with the recovery key file they hold, onto
 * this server. The backup is checked here, in the browser, before anything changes; the files
 * and the key go nowhere but to the new server. Only the restore's journal is stored: the key
 * and the password live in this component's memory and are gone with the tab.
 */
import { type MigrationEvent, type NextStep, STEP_TITLES, type StepName } from '@portage/migrate';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import { getHandle, normalizeServiceUrl } from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { checkBackup } from '@portage/migrate/backup-check';
import { parseRecoveryKeyFile } from '@portage/migrate/recovery-key';
import { restore } from '@portage/migrate/restore/restore';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PageConfig } from './config.ts';
import { capitalized, sentence } from './format.ts';
import { restoreFailure } from './messages.ts';
import {
  Actions,
  Field,
  handleHint,
  InputField,
  InviteField,
  OtherWay,
  type Phases,
  phasesAfter,
  PhaseRow,
  ScreenHead,
  ServerAddressField,
  ServerFacts,
} from './parts.tsx';
import { describeServer, type ServerInfo, suggestHandle } from './resolve.ts';
import { ChosenBackup, ChosenBackupError } from './storage/chosen-backup.ts';
import type { BrowserStorage } from './storage/choose.ts';

type Screen = 'gone' | 'restoring' | 'restored';

const SCREENS: { screen: Screen; title: string }[] = [
  { screen: 'gone', title: 'Restore from your backup' },
  { screen: 'restoring', title: 'Restoring your account' },
  { screen: 'restored', title: 'Your account is back' },
];

const RESTORE_STEPS: StepName[] = [
  'check-backup',
  'inspect-new',
  'claim-identity',
  'create-account',
  'repo',
  'blobs',
  'preferences',
  'verify',
  'identity',
  'activate',
];

export function RestoreWizard(props: {
  config: PageConfig;
  storage: BrowserStorage;
  server: ServerInfo | undefined;
  onBack: () => void;
}) {
  const { config, storage } = props;
  const [screen, setScreenState] = useState<Screen>('gone');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [backup, setBackup] = useState<ChosenBackup>();
  const [keyFile, setKeyFile] = useState<File>();
  const [target, setTarget] = useState(config.target ?? '');
  const [server, setServer] = useState<ServerInfo | undefined>(props.server);
  const [handle, setHandle] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [invite, setInvite] = useState('');
  const [phases, setPhases] = useState<Phases>({});
  const [notices, setNotices] = useState<string[]>([]);
  const [announcement, setAnnouncement] = useState('');
  const heading = useRef<HTMLHeadingElement>(null);
  const failure = useRef<{ message: string; next: NextStep }>(undefined);

  const setScreen = (next: Screen) => {
    setScreenState(next);
    setBusy(false);
  };
  useEffect(() => heading.current?.focus(), [screen]);
  useEffect(() => {
    if (config.target && !server) describeServer(config.target).then(setServer, () => {});
  }, []);

  const targetName = config.target ? 'this server' : 'the new server';

  async function chooseBackup(files: FileList | null, folder: boolean) {
    setError(undefined);
    setBackup(undefined);
    if (!files?.length) return;
    try {
      const chosen = folder ? ChosenBackup.fromFolder(files) : await ChosenBackup.fromTar(files[0]!);
      const did = await chosen.open();
      setBackup(chosen);
      setAnnouncement(`The backup is of ${did}.`);
      if (!handle) void suggestHandleOf(did).then((h) => h && setHandle((now) => now || h));
    } catch (err) {
      setError(
        err instanceof ChosenBackupError
          ? `${err.message} Choose the .tar the wizard downloaded, or the unpacked backup folder.`
          : 'The chosen backup could not be read. Choose it again.',
      );
    }
  }

  /** The handle the DID's document names, fitted to this server's domains. */
  async function suggestHandleOf(did: string): Promise<string | undefined> {
    try {
      const doc = await new DidResolver({ plcUrl: config.plcUrl }).resolve(did, { noCache: true });
      const old = getHandle(doc);
      return old ? suggestHandle(old, server) : undefined;
    } catch {
      return undefined;
    }
  }

  async function submit(e: Event) {
    e.preventDefault();
    setError(undefined);
    const verb = 'then press Restore.';
    if (!backup) return setError(`Choose your backup (the .tar the wizard downloaded), ${verb}`);
    if (!keyFile) return setError(`Choose your recovery key file, ${verb}`);
    const to = normalizeServiceUrl(target.trim());
    if (!to) return setError(`Enter the address of the new PDS, like https://pds.example.com, ${verb}`);
    if (!handle.trim()) return setError(`Choose a handle for the account on ${targetName}, ${verb}`);
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) return setError(`Enter an email address for the account, ${verb}`);
    if (!password) return setError(`Choose a password for the account, ${verb}`);
    setBusy(true);
    let info = server;
    if (!info || !config.target) {
      try {
        info = await describeServer(to);
        setServer(info);
      } catch (err) {
        setBusy(false);
        return setError(err instanceof Error ? err.message : String(err));
      }
    }
    if (info.inviteCodeRequired && !invite.trim()) {
      setBusy(false);
      return setError(`This server needs an invite code. Enter the one its operator gave you, ${verb}`);
    }
    // Read at the last moment and held only by this run: the key is never stored.
    let key: ExportableSigningKey;
    try {
      key = await parseRecoveryKeyFile(await keyFile.text(), keyFile.name);
    } catch (err) {
      setBusy(false);
      const text = `${sentence((err as Error).message)} Choose the recovery key file (the one this wizard or portage migrate saved), ${verb} Nothing was changed.`;
      setAnnouncement(text);
      return setError(text);
    }
    await run(to, backup, key);
  }

  async function run(to: string, chosen: ChosenBackup, key: ExportableSigningKey) {
    failure.current = undefined;
    setPhases({});
    setNotices([]);
    setScreen('restoring');
    setBusy(true);
    await storage.persist();
    const did = chosen.did;
    const outcome = await restore(
      {
        to,
        plcUrl: config.plcUrl,
        did,
        handle: handle.trim().toLowerCase(),
        email: email.trim(),
        ...(invite.trim() ? { inviteCode: invite.trim() } : {}),
        keyFile: keyFile!.name,
      },
      {
        storage: storage.journal,
        backup: chosen,
        recoveryKey: key,
        checkBackup: (signingKeys, orRecordedKey) => checkBackup(chosen, { did, signingKeys, orRecordedKey }),
        password: async () => password,
        onEvent,
      },
    );
    if (outcome.status === 'done') {
      setAnnouncement('The restore is complete.');
      setScreen('restored');
      return;
    }
    const f = failure.current as { message: string; next: NextStep } | undefined;
    const text = restoreFailure(
      f?.message ?? outcome.message,
      f?.next ?? outcome.next ?? { kind: 'run-again', reason: 'failed' },
    );
    setError(text);
    setAnnouncement(text);
    setScreen('gone');
  }

  function onEvent(event: MigrationEvent) {
    setPhases((p) => phasesAfter(p, event));
    switch (event.type) {
      case 'step-started':
        setAnnouncement(`${event.title}: started.`);
        break;
      case 'step-done':
        setAnnouncement(`${STEP_TITLES[event.step]}: done.`);
        break;
      case 'step-failed':
        failure.current = { message: event.message, next: event.nextStep };
        break;
      case 'warning':
      case 'notice':
        if (event.type === 'notice' && event.secret) break;
        // Kept as written: a notice may carry a document to publish, line by line.
        setNotices((n) => [...n, capitalized(event.message)]);
        break;
      default:
        break;
    }
  }

  return (
    <main>
      <ScreenHead
        brand={config.target ? `Restore your account on ${location.host}` : 'Restore your AT Protocol account'}
        screens={SCREENS}
        screen={screen}
        heading={heading}
        announcement={announcement}
        error={error}
      />

      {screen === 'gone' && (
        <form onSubmit={submit} noValidate>
          <p>
            Your old server is gone, and you have a backup of your account and the recovery key file you kept. The
            account comes back on {targetName} from them; they are read in this browser and sent nowhere else.
          </p>
          <Notices notices={notices} />
          {server && <ServerFacts server={server} name={targetName} />}
          <FileField
            label="Backup file"
            hint={
              backup
                ? `Chosen: ${backup.where}, a backup of ${backup.did}.`
                : 'The .tar the wizard downloaded (portage-backup-….tar).'
            }
            accept=".tar,application/x-tar"
            onFiles={(files) => void chooseBackup(files, false)}
          />
          <FileField
            label="Or the backup folder"
            hint="The backup unpacked, or the folder portage backup wrote."
            folder
            onFiles={(files) => void chooseBackup(files, true)}
          />
          <FileField
            label="Recovery key file"
            hint={
              keyFile
                ? `Chosen: ${keyFile.name}. It is read only to sign for your identity, and never stored.`
                : 'The file with your recovery key, saved when the key was added to your account.'
            }
            accept=".txt,.key,text/plain"
            onFiles={(files) => {
              setError(undefined);
              setKeyFile(files?.[0]);
            }}
          />
          {!config.target && (
            <ServerAddressField
              going="restore to"
              value={target}
              onValue={(value) => {
                setTarget(value);
                setServer(undefined);
              }}
            />
          )}
          <InputField
            label="Handle"
            hint={handleHint(server, 'Your handle on the new server.')}
            value={handle}
            onValue={setHandle}
            autocapitalize="none"
          />
          <InputField
            label="Email address"
            hint={`${capitalized(targetName)} sends its messages (like sign-in codes) here.`}
            type="email"
            value={email}
            onValue={setEmail}
            autocomplete="email"
          />
          <InputField
            label="Password for the account"
            hint="Choose one; it is not stored in this browser."
            type="password"
            value={password}
            onValue={setPassword}
            autocomplete="new-password"
          />
          {(server?.inviteCodeRequired || invite) && (
            <InviteField serverName={targetName} value={invite} onValue={setInvite} />
          )}
          <Actions busy={busy} label="Restore" />
          <OtherWay label="Back: my old server still runs" disabled={busy} onClick={props.onBack} />
        </form>
      )}

      {screen === 'restoring' && (
        <div>
          <p>
            Your account is restored on {targetName} from the backup. Keep this tab open; if it closes, open this page
            again, choose the same files and press Restore to pick up where it stopped.
          </p>
          <Notices notices={notices} />
          <ol class="phases">
            {RESTORE_STEPS.map((step) => (
              <PhaseRow key={step} step={step} phase={phases[step]} />
            ))}
          </ol>
        </div>
      )}

      {screen === 'restored' && (
        <div>
          <p class="success">
            Your account {backup?.did} now lives on {targetName}: your identity names it, and your posts, media and
            preferences are back.
          </p>
          <h2>What to do next</h2>
          <ul>
            <li>
              Sign in to your apps with {handle.trim().toLowerCase() || 'your handle'} and the password you chose. If
              the app asks for a hosting provider, give {target || location.origin}.
            </li>
            <li>Your recovery key stays first among your identity's keys: keep its file safe and offline.</li>
            <li>You can close this tab.</li>
          </ul>
        </div>
      )}
    </main>
  );
}

/** A labelled file chooser; `folder` chooses a whole folder instead of one file. */
function FileField(props: {
  label: string;
  hint: string;
  accept?: string;
  folder?: boolean;
  onFiles: (files: FileList | null) => void;
}) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id, hint) => (
        <input
          id={id}
          type="file"
          accept={props.accept}
          aria-describedby={hint}
          {...(props.folder ? { webkitdirectory: true } : {})}
          onChange={(e) => props.onFiles(e.currentTarget.files)}
        />
      )}
    </Field>
  );
}

/** What the restore said on the way (warnings, a did:web document to publish), as written. */
function Notices({ notices }: { notices: string[] }) {
  if (!notices.length) return null;
  return (
    <ul class="warnings notices">
      {notices.map((text, i) => (
        <li key={i}>{text}</li>
      ))}
    </ul>
  );
}
