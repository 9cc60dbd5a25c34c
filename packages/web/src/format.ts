import type { ProgressFigures } from '@portage/migrate';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** One line under a progress bar: count, bytes, rate and time left, as far as they are known. */
export function describeProgress(p: ProgressFigures): string {
  const parts: string[] = [];
  if (p.unit === 'blobs') parts.push(p.total !== undefined ? `${p.done} of ${p.total} files` : `${p.done} files`);
  parts.push(
    p.unit === 'bytes' && p.total !== undefined
      ? `${formatBytes(p.bytes)} of ${formatBytes(p.total)}`
      : formatBytes(p.bytes),
  );
  if (p.bytesPerSecond > 0) parts.push(`${formatBytes(p.bytesPerSecond)}/s`);
  if (p.etaSeconds !== undefined && p.etaSeconds > 0) parts.push(`about ${formatDuration(p.etaSeconds)} left`);
  return parts.join(' · ');
}

/** Starts a fragment with a capital and ends it with a full stop. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  // Addresses and DIDs keep their case: "Http://..." would read as a typo.
  const s = /^(https?:|did:)/.test(t) ? t : t[0]!.toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** Starts a fragment with a capital, to open a sentence that goes on. */
export function capitalized(text: string): string {
  return text ? text[0]!.toUpperCase() + text.slice(1) : text;
}
