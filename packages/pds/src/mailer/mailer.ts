/**
 * Outgoing email. With PDS_EMAIL_SMTP_URL set, mail goes out over SMTP (nodemailer);
 * otherwise (a laptop, tests) each message is appended to `<data dir>/outbox.jsonl`
 * (mode 0600) and the log says one was written, without its body, because bodies carry
 * one-time tokens.
 */
import { appendFile } from 'node:fs/promises';
import nodemailer from 'nodemailer';
import type { Logger } from '../logger.ts';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  /** The same message as HTML, for clients that show it. */
  html?: string;
}

export interface MailerOptions {
  smtpUrl: string | undefined;
  from: string;
  outboxPath: string;
  logger: Logger;
}

export class Mailer {
  readonly outboxPath: string;
  readonly #from: string;
  readonly #logger: Logger;
  readonly #transport: nodemailer.Transporter | undefined;

  constructor(opts: MailerOptions) {
    this.outboxPath = opts.outboxPath;
    this.#from = opts.from;
    this.#logger = opts.logger;
    this.#transport = opts.smtpUrl ? nodemailer.createTransport(opts.smtpUrl) : undefined;
  }

  async send(message: MailMessage): Promise<void> {
    if (this.#transport) {
      await this.#transport.sendMail({
        from: this.#from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
      this.#logger.info({ to: message.to, subject: message.subject }, 'email sent');
      return;
    }
    const entry = { at: new Date().toISOString(), from: this.#from, ...message };
    await appendFile(this.outboxPath, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    this.#logger.info(
      { to: message.to, subject: message.subject, outbox: this.outboxPath },
      'email written to the outbox (no SMTP configured)',
    );
  }

  close(): void {
    this.#transport?.close();
  }
}
