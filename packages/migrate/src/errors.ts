import { AtprotoError } from '@portage/atproto/errors';

/**
 * A migration stopped for a reason the user can act on. `next` is the sentence shown after the
 * message: what to do now (fix an input, wait, run again).
 */
export class MigrationError extends AtprotoError {
  readonly next: string;
  constructor(code: string, message: string, next: string, options?: ErrorOptions) {
    super(code, message, options);
    this.next = next;
  }
}
