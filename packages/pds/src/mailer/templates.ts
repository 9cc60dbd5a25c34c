/**
 * The mail Portage sends: one template per purpose, each as plain text and as HTML (mail
 * clients show whichever they prefer). Every one carries a one-time code the person types
 * back; the wording says what the code is for and what to do if they did not ask for it.
 */
import type { MailMessage } from './mailer.ts';

export type TokenMailPurpose =
  'confirm_email' | 'update_email' | 'reset_password' | 'delete_account' | 'plc_operation' | 'sign_in';

interface TokenMailText {
  subject: string;
  /** What was asked, one sentence. */
  asked: string;
  /** What to do with the code. */
  use: string;
  /** What to do if the person did not ask. */
  notMe: string;
}

const TEXTS: Record<TokenMailPurpose, TokenMailText> = {
  confirm_email: {
    subject: 'Confirm your email address',
    asked: 'Please confirm that this is your email address.',
    use: 'Enter this code in your app to confirm it',
    notMe: 'If you did not ask for this, you can ignore this message.',
  },
  update_email: {
    subject: 'Change your email address',
    asked: 'We received a request to change the email address of your account.',
    use: 'Enter this code in your app to change it',
    notMe: 'If you did not ask for this, change your password: someone else may have it.',
  },
  reset_password: {
    subject: 'Reset your password',
    asked: 'We received a request to reset the password of your account.',
    use: 'Enter this code in your app with your new password',
    notMe: 'If you did not ask for this, you can ignore this message: your password stays as it is.',
  },
  delete_account: {
    subject: 'Delete your account',
    asked: 'We received a request to delete your account. Deletion cannot be undone.',
    use: 'Enter this code in your app to delete the account',
    notMe: 'If you did not ask for this, change your password: someone else may have it.',
  },
  sign_in: {
    subject: 'Your sign-in code',
    asked: 'Someone, hopefully you, is signing in to your account with its password.',
    use: 'Enter this code to finish signing in',
    notMe: 'If it was not you, change your password: someone else has it.',
  },
  plc_operation: {
    subject: 'PLC Update Operation Requested',
    asked: "We received a request to update your account's DID document, for example to move it to another server.",
    use: 'Your confirmation code',
    notMe: 'If you did not ask for this, change your password: someone else may have it.',
  },
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The mail that carries `token` for `purpose` to `to`; `handle` names the account. */
export function tokenMail(purpose: TokenMailPurpose, to: string, vars: { handle: string; token: string }): MailMessage {
  const t = TEXTS[purpose];
  const expiry = 'The code is valid for 15 minutes and works once.';
  const text = `Hello ${vars.handle},\n\n${t.asked}\n\n${t.use}: ${vars.token}\n\n${expiry} ${t.notMe}\n`;
  const html =
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">' +
    `<p>Hello ${escapeHtml(vars.handle)},</p><p>${escapeHtml(t.asked)}</p>` +
    `<p>${escapeHtml(t.use)}:</p>` +
    `<p style="font-size: 1.5em; font-family: monospace; letter-spacing: 0.1em"><strong>${escapeHtml(vars.token)}</strong></p>` +
    `<p>${escapeHtml(expiry)} ${escapeHtml(t.notMe)}</p></body></html>`;
  return { to, subject: t.subject, text, html };
}
