/**
 * Signing up: checks the request, mints a did:plc (genesis operation signed with this PDS's
 * rotation key, naming a fresh per-account secp256k1 signing key) and registers it with the
 * PLC directory, creates the repository with its first signed commit, records the account,
 * and announces it on the firehose (#identity, #account, written with the account row in one
 * transaction). Each step undoes the earlier ones if a later one fails, so a failed sign-up
 * leaves no account, repository or half-registered handle behind.
 *
 * With `did` given (a migration), the caller has proven control of that DID with a service
 * JWT; no PLC operation is made and the account starts deactivated, as in the reference.
 */
import { generateSigningKey, parseDidKey } from '@portage/atproto/crypto';
import { cidForPlcOperation, createGenesisOperation, createTombstone } from '@portage/atproto/plc/operations';
import type { AppContext } from '../context.ts';
import { submitToPlc } from '../identity/plc-identity.ts';
import { InvalidRequest } from '../xrpc/errors.ts';
import { NEW_PASSWORD_MAX_LENGTH, type Session } from './account-manager.ts';
import { hashPassword } from './passwords.ts';
import { isValidEmail } from './email.ts';
import { checkHandle } from './handles.ts';

export interface CreateAccountInput {
  handle: string;
  email: string | undefined;
  password: string | undefined;
  inviteCode: string | undefined;
  recoveryKey: string | undefined;
  /** Set only for a migration, after the caller verified a service JWT issued by this DID. */
  did: string | undefined;
}

export interface CreatedAccount extends Session {
  did: string;
  handle: string;
}

export async function createAccount(ctx: AppContext, input: CreateAccountInput): Promise<CreatedAccount> {
  const { config, accountManager } = ctx;
  const { email, password, inviteCode } = input;
  if (!password) throw InvalidRequest('Password is required');
  if (password.length > NEW_PASSWORD_MAX_LENGTH) {
    throw InvalidRequest(`Password too long. Maximum length is ${NEW_PASSWORD_MAX_LENGTH} characters.`);
  }
  if (config.inviteRequired && !inviteCode) throw InvalidRequest('No invite code provided', 'InvalidInviteCode');
  if (!email) throw InvalidRequest('Email is required');
  if (input.recoveryKey !== undefined) {
    try {
      parseDidKey(input.recoveryKey);
    } catch {
      throw InvalidRequest('recoveryKey must be a did:key');
    }
  }
  if (!isValidEmail(email)) {
    throw InvalidRequest('This email address is not supported, please use a different email.');
  }
  const { handle, hosted } = checkHandle(input.handle, config.serviceHandleDomains, {
    allowExternal: input.did !== undefined,
  });
  if (!hosted) {
    const resolved = await ctx.handleResolver.resolve(handle).catch(() => undefined);
    if (resolved !== input.did) throw InvalidRequest('External handle did not resolve to DID');
  }
  if (config.inviteRequired && inviteCode) accountManager.ensureInviteAvailable(inviteCode);
  if (accountManager.getAccount(handle)) throw InvalidRequest(`Handle already taken: ${handle}`);
  if (accountManager.getAccountByEmail(email)) throw InvalidRequest(`Email already taken: ${email}`);
  if (input.did && accountManager.getAccount(input.did)) {
    throw InvalidRequest(`Account already exists: ${input.did}`, 'AlreadyExists');
  }

  // The password's scrypt (tens of ms on the thread pool) runs while the keys, the DID and the
  // repository are made; started only now, when the cheap checks have passed.
  const passwordHash = hashPassword(password);
  passwordHash.catch(() => {}); // a sign-up that fails before the account is recorded leaves it unused

  // A DID moving in may have reserved its key here first (reserveSigningKey), to name it in the
  // PLC operation before the account existed.
  const signingKey =
    (input.did ? await ctx.actorStore.reservedSigningKey(input.did) : undefined) ??
    (await generateSigningKey('secp256k1'));
  let did: string;
  let genesis: Awaited<ReturnType<typeof createGenesisOperation>>['operation'] | undefined;
  if (input.did) {
    did = input.did;
  } else {
    const rotationKeys = [ctx.plcRotationKey.did()];
    if (input.recoveryKey) rotationKeys.unshift(input.recoveryKey);
    const created = await createGenesisOperation({
      signingKeyDid: signingKey.did(),
      rotationKeys,
      handle,
      pdsEndpoint: config.publicUrl,
      rotationKey: ctx.plcRotationKey,
    });
    did = created.did;
    genesis = created.operation;
  }

  // The DID is registered before the repository exists, so the repository's first commit
  // (which goes out on the firehose) never names a DID that relays cannot resolve.
  if (genesis) await submitToPlc(ctx, did, genesis);
  let repoCreated = false;
  try {
    await ctx.actorStore.create(did, signingKey);
    repoCreated = true;
    await accountManager.createAccount({
      did,
      handle,
      email,
      passwordHash,
      inviteCode: config.inviteRequired ? inviteCode : undefined,
      // A migrating account starts deactivated and announces itself when it is activated;
      // a new one announces itself (#identity, #account) in the transaction that records it.
      deactivated: input.did !== undefined,
    });
  } catch (err) {
    if (repoCreated) {
      await ctx.actorStore.destroy(did).catch((e: unknown) => ctx.logger.error({ err: e, did }, 'repo cleanup failed'));
    }
    if (genesis) {
      // The DID was registered but the account could not be recorded (e.g. a concurrent
      // sign-up took the handle): retire the DID so it does not linger pointing here.
      const tombstone = await createTombstone(cidForPlcOperation(genesis), ctx.plcRotationKey);
      await ctx.plcClient
        .submitOperation(did, tombstone)
        .catch((e: unknown) => ctx.logger.error({ err: e, did }, 'PLC tombstone after failed sign-up failed'));
    }
    throw err;
  }
  if (input.did) await ctx.actorStore.clearReservedSigningKey(input.did);
  const session = await accountManager.createSession(did, null);
  return { did, handle, ...session };
}
