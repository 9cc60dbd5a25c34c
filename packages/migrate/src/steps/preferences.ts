/** Step "preferences": the app preferences (private to the account), old server to new, and to the backup. */
import type { RunState } from './run.ts';

export async function copyPreferences(state: RunState): Promise<string> {
  const { preferences } = await state.old!.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences');
  await state.neu!.procedure('app.bsky.actor.putPreferences', { preferences });
  await state.backup?.writePreferences(preferences);
  return `copied ${preferences.length} preferences`;
}
