/**
 * Turns an inspection into plain findings: what state the account is in, in words, and which of
 * the safe repairs apply. Pure: it reads the inspection only, so the wizard can word it its own
 * way by `code`.
 */
import { sameServiceUrl } from '@portage/atproto/identity/did-document';
import type { DoctorAdvice, NextStep } from '../next-steps.ts';
import type { AccountInspection, ServerView } from './inspect.ts';

export type FindingCode =
  | 'healthy'
  | 'current-unreachable'
  | 'current-missing'
  | 'current-not-signed-in'
  | 'current-takendown'
  | 'did-key-mismatch'
  | 'repo-not-imported'
  | 'blobs-missing'
  | 'current-inactive'
  | 'both-deactivated'
  | 'other-still-active'
  | 'move-unfinished';

/** A repair the doctor may make, in the order they run. */
export type Repair = 'import-repo' | 'upload-blobs' | 'activate-current' | 'deactivate-other';

export interface Finding {
  code: FindingCode;
  /** 'problem' keeps the account from working (or leaves a copy live); 'note' does not. */
  severity: 'problem' | 'note';
  message: string;
  /** The repair that settles it, when one is safe; otherwise `next` says what to do, for a front end to word. */
  repair?: Repair;
  next?: NextStep | DoctorAdvice;
}

export interface Diagnosis {
  /** One sentence: the state of the account as a whole. */
  summary: string;
  findings: Finding[];
  /** The repairs the doctor would make when asked to, in order. */
  repairs: Repair[];
  healthy: boolean;
}

export function diagnose(ins: AccountInspection): Diagnosis {
  const findings: Finding[] = [];
  const cur = ins.current;
  const other = ins.other;
  const where = `the server the DID points to (${cur.url})`;

  if (cur.unreachable) {
    findings.push({
      code: 'current-unreachable',
      severity: 'problem',
      message: `${where} does not answer: ${cur.unreachable}`,
      next: { kind: 'restore-from-backup', reason: 'unreachable' },
    });
  } else if (!cur.exists) {
    findings.push({
      code: 'current-missing',
      severity: 'problem',
      message: `${where} has no account for ${ins.did}: the DID was pointed at a server before the account was made there`,
      next: other?.exists
        ? { kind: 'finish-move', did: ins.did, to: cur.url, fromPds: other.url, stage: 'account-missing' }
        : { kind: 'restore-from-backup', reason: 'no-account' },
    });
  } else if (cur.publicStatus === 'takendown' || cur.publicStatus === 'suspended') {
    findings.push({
      code: 'current-takendown',
      severity: 'problem',
      message: `${where} has ${cur.publicStatus === 'takendown' ? 'taken the account down' : 'suspended the account'}`,
      next: { kind: 'restore-from-backup', reason: 'taken-down' },
    });
  } else if (!cur.status) {
    findings.push({
      code: 'current-not-signed-in',
      severity: cur.active ? 'note' : 'problem',
      message: cur.signInError
        ? `could not sign in on ${cur.url} (${cur.signInError}), so only its public status is known`
        : `no password was given for ${cur.url}, so only its public status is known`,
      next: { kind: 'need-input', field: 'password', reason: cur.signInError ? 'wrong' : 'missing' },
    });
    if (!cur.active) inactiveFindings(findings, cur, other);
  } else {
    const st = cur.status;
    if (!st.validDid) {
      findings.push({
        code: 'did-key-mismatch',
        severity: 'problem',
        message: `${cur.url} does not accept the DID document as its own: its signing key or PDS entry is not what that server expects`,
        next: { kind: 'finish-move', did: ins.did, to: cur.url, stage: 'identity-mismatch' },
      });
    }
    const otherRecords = other?.status?.indexedRecords ?? 0;
    // An account may rightly hold no records; it is only a lost import when the other end has some.
    if (st.indexedRecords === 0 && otherRecords > 0) {
      findings.push({
        code: 'repo-not-imported',
        severity: 'problem',
        message: `the account on ${cur.url} holds no records (${otherRecords} on ${other!.url}): the repository was never imported`,
        ...(st.activated
          ? {
              next: {
                kind: 'advice',
                text: 'The account is active there, so nothing is overwritten: import the repository yourself or ask its operator.',
              },
            }
          : { repair: 'import-repo' as const }),
      });
    }
    const missing = cur.missingBlobs?.length ?? 0;
    if (missing > 0 || st.importedBlobs < st.expectedBlobs) {
      findings.push({
        code: 'blobs-missing',
        severity: 'problem',
        message: `${Math.max(missing, st.expectedBlobs - st.importedBlobs)} of ${st.expectedBlobs} blobs (images, videos) are missing on ${cur.url}: posts there show empty pictures`,
        repair: 'upload-blobs',
      });
    }
    if (!st.activated) inactiveFindings(findings, cur, other);
  }

  const otherIsOld = other !== undefined && ins.earlierPdses.some((url) => sameServiceUrl(url, other.url));
  if (other?.exists && other.active && cur.exists && otherIsOld) {
    findings.push({
      code: 'other-still-active',
      severity: 'problem',
      message: `the old account on ${other.url} is still active after the move: two servers speak for the account`,
      ...(other.status
        ? { repair: 'deactivate-other' as const }
        : { next: { kind: 'sign-in-to-repair', server: 'other' } as const }),
    });
  } else if (other?.exists && !otherIsOld && (cur.status?.activated ?? cur.active)) {
    findings.push({
      code: 'move-unfinished',
      severity: 'note',
      message: `a move to ${other.url} was started and not finished: the PLC document still names ${cur.url}, where the account works`,
      next: { kind: 'finish-move', did: ins.did, to: other.url, stage: 'not-switched' },
    });
  }

  const problems = findings.filter((f) => f.severity === 'problem');
  const order: Repair[] = ['import-repo', 'upload-blobs', 'activate-current', 'deactivate-other'];
  const repairs = order.filter((r) => findings.some((f) => f.repair === r));
  if (problems.length === 0 && findings.every((f) => f.code !== 'current-not-signed-in')) {
    findings.unshift({
      code: 'healthy',
      severity: 'note',
      message: `the account is active on ${cur.url}, which the DID points to${cur.status ? `, with ${cur.status.indexedRecords} records and every blob` : ''}`,
    });
  }
  return { summary: summarize(ins, problems), findings, repairs, healthy: problems.length === 0 };
}

/** The current account is not active: say whether anything anywhere works. */
function inactiveFindings(findings: Finding[], cur: ServerView, other?: ServerView): void {
  const otherInactive = other?.exists && !other.active;
  if (otherInactive) {
    findings.push({
      code: 'both-deactivated',
      severity: 'problem',
      message: `both accounts are deactivated (on ${cur.url} and on ${other!.url}): the account is locked out everywhere`,
    });
  }
  findings.push({
    code: 'current-inactive',
    severity: 'problem',
    message: `the DID points to ${cur.url}, where the account is ${cur.publicStatus ?? 'deactivated'}: nobody can see or use it`,
    ...(cur.status
      ? { repair: 'activate-current' as const }
      : { next: { kind: 'sign-in-to-repair', server: 'current' } as const }),
  });
}

function summarize(ins: AccountInspection, problems: Finding[]): string {
  const name = ins.handle ? `${ins.handle} (${ins.did})` : ins.did;
  if (problems.length === 0) return `${name} is in order on ${ins.current.url}.`;
  const codes = new Set(problems.map((p) => p.code));
  if (codes.has('both-deactivated')) return `${name} is locked out: both accounts are deactivated.`;
  if (codes.has('current-missing')) return `${name} points at a server that does not have it.`;
  if (codes.has('current-inactive')) return `${name} points at ${ins.current.url}, where it is not active.`;
  if (codes.has('repo-not-imported')) return `${name} has no records on ${ins.current.url}.`;
  if (codes.has('blobs-missing')) return `${name} is missing blobs on ${ins.current.url}.`;
  if (codes.has('other-still-active'))
    return `${name} moved to ${ins.current.url}, but the old account is still active.`;
  return `${name} has ${problems.length} problem(s).`;
}
