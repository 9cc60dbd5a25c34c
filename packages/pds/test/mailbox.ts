/** A real SMTP server on loopback (smtp-server) that keeps what it receives, for the mail flows' tests. */
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import { startTestPds, type TestPds, type TestPdsOptions } from './harness.ts';

export interface Mailbox {
  url: string;
  messages: { to: string[]; raw: string }[];
  close(): Promise<void>;
}

export async function startMailbox(): Promise<Mailbox> {
  const messages: Mailbox['messages'] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString() });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function tokenFromMail(mailbox: Mailbox, email: string): string {
  const mail = mailbox.messages.filter((m) => m.to.includes(email)).at(-1);
  assert.ok(mail, `a mail reached ${email}`);
  const match = /[A-Z2-7]{5}-[A-Z2-7]{5}/.exec(mail.raw);
  assert.ok(match, 'the mail carries an XXXXX-XXXXX token');
  return match[0];
}

/** A test PDS that sends its mail over SMTP to a fresh mailbox; close the PDS, then the mailbox. */
export async function startPdsWithMailbox(opts: TestPdsOptions = {}): Promise<{ pds: TestPds; mailbox: Mailbox }> {
  const mailbox = await startMailbox();
  try {
    const pds = await startTestPds({
      ...opts,
      env: { PDS_EMAIL_SMTP_URL: mailbox.url, PDS_EMAIL_FROM_ADDRESS: 'pds@example.com', ...opts.env },
    });
    return { pds, mailbox };
  } catch (err) {
    await mailbox.close();
    throw err;
  }
}
