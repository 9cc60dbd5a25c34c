/** Step "preferences": the app preferences (private to the account), old server to new, and to the backup. */
import type { RunContext, RunState } from './run.ts';

export async function copyPreferences(ctx: RunContext, state: RunState): Promise<string> {
  const { preferences } = await state.old!.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences');
  await state.neu!.procedure('app.bsky.actor.putPreferences', { preferences });
  await state.backup?.writePreferences(preferences);
  if (state.old!.delegated) {
    // The reference PDS answers an OAuth session without personal details, whatever the scopes.
    ctx.emit({
      type: 'warning',
      step: 'preferences',
      message:
        'signed in without the password, the old server may keep personal details (such as a birth date) to itself: check them in your app on the new server',
    });
  }
  return `copied ${preferences.length} preferences`;
}
