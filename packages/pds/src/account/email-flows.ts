/**
 * The account's email flows, as the reference PDS runs them: confirming the address, changing
 * it (with a code sent to the old address once it is confirmed), resetting a forgotten
 * password, and the code that deleting the account asks for. Each mails a one-time code (15 minutes) and spends it; the account database is
 * changed only through AccountManager.
 */
import { AuthRequired, InvalidRequest } from '../xrpc/errors.ts';
import type { Mailer } from '../mailer/mailer.ts';
import { tokenMail, type TokenMailPurpose } from '../mailer/templates.ts';
import type { Account, AccountManager } from './account-manager.ts';
import { isValidEmail } from './email.ts';

export class AccountEmailFlows {
  readonly #accounts: AccountManager;
  readonly #mailer: Mailer;

  constructor(accounts: AccountManager, mailer: Mailer) {
    this.#accounts = accounts;
    this.#mailer = mailer;
  }

  #account(did: string): Account {
    const account = this.#accounts.getAccount(did);
    if (!account) throw InvalidRequest('account not found', 'AccountNotFound');
    return account;
  }

  async #mailToken(account: Account, purpose: TokenMailPurpose, to: string): Promise<void> {
    const token = this.#accounts.createEmailToken(account.did, purpose);
    await this.#mailer.send(tokenMail(purpose, to, { handle: account.handle ?? to, token }));
  }

  /** Mails a code that confirmEmail takes. */
  async requestConfirmation(did: string): Promise<void> {
    const account = this.#account(did);
    if (!account.email) throw InvalidRequest('account does not have an email address');
    await this.#mailToken(account, 'confirm_email', account.email);
  }

  /** Spends the code and marks `email` confirmed; it must be the account's address. */
  confirm(did: string, email: string, token: string): void {
    const account = this.#account(did);
    if (account.email !== email.toLowerCase()) throw InvalidRequest('invalid email', 'InvalidEmail');
    this.#accounts.consumeEmailToken(did, 'confirm_email', token);
    this.#accounts.confirmEmail(did);
  }

  /**
   * Starts a change of address. A confirmed address must approve it: a code goes to it, and
   * `tokenRequired` tells the app to ask for it. An unconfirmed one needs no code.
   */
  async requestUpdate(did: string): Promise<{ tokenRequired: boolean }> {
    const account = this.#account(did);
    if (!account.email) throw InvalidRequest('account does not have an email address');
    const tokenRequired = account.emailConfirmedAt !== null;
    if (tokenRequired) await this.#mailToken(account, 'update_email', account.email);
    return { tokenRequired };
  }

  /**
   * Changes the address (unconfirmed again when it changes) and, when given, turns the mailed
   * sign-in code on or off, spending the code when the old address was confirmed. Sign-in codes
   * need a confirmed address: they would otherwise go where nobody has shown they read.
   */
  update(did: string, email: string, token: string | undefined, emailAuthFactor?: boolean): void {
    if (!isValidEmail(email)) {
      throw InvalidRequest('This email address is not supported, please use a different email.');
    }
    const account = this.#account(did);
    const holder = this.#accounts.getAccountByEmail(email);
    // Checked before the code is spent, so a refused change leaves the code usable.
    if (holder && holder.did !== did) throw InvalidRequest('This email address is already taken');
    if (account.emailConfirmedAt !== null) {
      if (!token) throw InvalidRequest('confirmation token required', 'TokenRequired');
      this.#accounts.consumeEmailToken(did, 'update_email', token);
    }
    const keepsConfirmedAddress = account.emailConfirmedAt !== null && account.email === email.toLowerCase();
    if (emailAuthFactor && !keepsConfirmedAddress) {
      throw InvalidRequest('Confirm your email address before turning on sign-in codes');
    }
    this.#accounts.updateEmail(did, email, emailAuthFactor);
  }

  /** Mails the code deleteAccount asks for. */
  async requestAccountDelete(did: string): Promise<void> {
    const account = this.#account(did);
    if (!account.email) throw InvalidRequest('account does not have an email address');
    await this.#mailToken(account, 'delete_account', account.email);
  }

  /**
   * Checks what deleting the account takes: its password (401 otherwise) and the mailed code,
   * which is spent. Changes nothing else; the caller deletes.
   */
  async authorizeAccountDelete(did: string, password: string, token: string): Promise<void> {
    if (!(await this.#accounts.verifyAccountPassword(did, password))) {
      throw AuthRequired('Invalid did or password');
    }
    this.#accounts.consumeEmailToken(did, 'delete_account', token);
  }

  /**
   * The second step of signing in with the account password when sign-in codes are on: without
   * a code, one is mailed and the answer is 401 AuthFactorTokenRequired; with one, it is spent.
   */
  async checkSignInCode(account: Account, token: string | undefined): Promise<void> {
    if (!account.emailAuthFactor || !account.email) return;
    if (!token) {
      await this.#mailToken(account, 'sign_in', account.email);
      throw AuthRequired('A sign in code has been sent to your email address', 'AuthFactorTokenRequired');
    }
    this.#accounts.consumeEmailToken(account.did, 'sign_in', token);
  }

  /** Mails a password-reset code to the account with this address. */
  async requestPasswordReset(email: string): Promise<void> {
    const account = this.#accounts.getAccountByEmail(email);
    if (!account?.email) throw InvalidRequest('account does not have an email address');
    await this.#mailToken(account, 'reset_password', account.email);
  }

  /** Sets the new password for the account the code was mailed to, and ends all its sessions. */
  async resetPassword(token: string, password: string): Promise<void> {
    const did = this.#accounts.didForEmailToken('reset_password', token);
    await this.#accounts.updatePassword(did, password);
  }
}
