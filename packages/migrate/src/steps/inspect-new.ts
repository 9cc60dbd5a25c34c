/** Step "inspect-new": the new server is a PDS, its service DID, and whether it wants an invite. */
import { XrpcClient } from '@portage/atproto/xrpc/client';
import { MigrationError } from '../errors.ts';
import { describeError, withRetry } from '../retry.ts';
import { type NewServerDescription, type RunContext, type RunState, saveState } from './run.ts';

/** describeServer of the new server (public: it runs while the old server checks the password). */
export function describeNewServer(ctx: { to: string; fetch?: typeof fetch }): Promise<NewServerDescription> {
  const client = new XrpcClient({ service: ctx.to, fetch: ctx.fetch });
  return withRetry(
    () => client.query<NewServerDescription>('com.atproto.server.describeServer', undefined, { timeoutMs: 30_000 }),
    { attempts: 3 },
  );
}

/** The description of `to` once it shows a PDS with a service DID; else the error that asks for another address. */
export async function checkedNewServer(
  to: string,
  described: Promise<NewServerDescription>,
): Promise<NewServerDescription & { did: string }> {
  let desc: NewServerDescription;
  try {
    desc = await described;
  } catch (err) {
    throw new MigrationError(
      'NotAPds',
      `${to} does not answer as an AT Protocol PDS (describeServer: ${describeError(err)})`,
      { kind: 'need-input', field: 'to', reason: 'not-a-pds', nothingChanged: true },
      { cause: err },
    );
  }
  if (typeof desc !== 'object' || desc === null || typeof desc.did !== 'string' || !desc.did.startsWith('did:')) {
    throw new MigrationError('NotAPds', `${to} answered describeServer without a service DID`, {
      kind: 'need-input',
      field: 'to',
      reason: 'not-a-pds',
      nothingChanged: true,
    });
  }
  return desc as NewServerDescription & { did: string };
}

export async function inspectNewServer(ctx: RunContext, state: RunState): Promise<string> {
  const desc = await checkedNewServer(ctx.to, state.description ?? describeNewServer(ctx));
  state.newServiceDid = desc.did;
  state.inviteRequired = desc.inviteCodeRequired === true;
  if (Array.isArray(desc.availableUserDomains)) {
    state.userDomains = desc.availableUserDomains.filter((d): d is string => typeof d === 'string');
  }
  if (typeof desc.blobUploadLimit === 'number' && desc.blobUploadLimit > 0)
    state.blobUploadLimit = desc.blobUploadLimit;
  state.journal!.newServiceDid = desc.did;
  await saveState(ctx, state);
  return `${ctx.to} is ${desc.did}${state.inviteRequired ? ' (invite code required)' : ''}`;
}
