import { AtprotoError } from '@portage/atproto/errors';
import { describeNextStep, type NextStep } from './next-steps.ts';

/**
 * A migration stopped for a reason the user can act on. `nextStep` says what to do now (fix an
 * input, give a code, wait, run again) for a front end to word; `next` is that in plain words.
 */
export class MigrationError extends AtprotoError {
  readonly nextStep: NextStep;
  readonly next: string;
  constructor(code: string, message: string, next: NextStep | string, options?: ErrorOptions) {
    super(code, message, options);
    this.nextStep = typeof next === 'string' ? { kind: 'advice', text: next } : next;
    this.next = typeof next === 'string' ? next : describeNextStep(next);
  }
}
