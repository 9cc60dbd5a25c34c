/**
 * `portage identity add-rotation-key`: puts a key the user holds first in the rotation keys of an
 * account that is not moving. The account's own server signs the operation (after the code it
 * emails) and submits it; the key is written to the user's key store before anything is signed,
 * so a key the directory lists is never lost. Ran again with the same key file, it finishes or
 * finds the work done.
 */
import { generateSigningKey } from '@portage/atproto/crypto';
import { getPdsEndpoint, normalizeServiceUrl } from '@portage/atproto/identity/did-document';
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import { PlcClient } from '@portage/atproto/plc/client';
import { isPlcDid, PLC_LIMITS } from '@portage/atproto/plc/operations';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import type { RecoveryKeyStore } from '../engine.ts';
import { MigrationError } from '../errors.ts';
import type { NextStep } from '../next-steps.ts';
import { describeError } from '../retry.ts';
import { PdsSession } from '../session.ts';
import { didFor } from './resolve-did.ts';

export interface AddRotationKeyOptions {
  from: string;
  plcUrl?: string;
}

export interface AddRotationKeyEnvironment {
  fetch?: typeof fetch;
  resolveTxt?: (name: string) => Promise<string[]>;
  keyStore: RecoveryKeyStore;
  password(): Promise<string>;
  authFactorToken?(): Promise<string | undefined>;
  /** As for a migration: the emailed code, or undefined when it cannot be asked now. */
  plcToken(requested: boolean): Promise<string | undefined>;
  /** Things the user must see; `secret` ones (the key) are shown once and never logged. */
  onNotice(message: string, secret?: boolean): void;
}

export type AddRotationKeyStatus = 'done' | 'already-first' | 'waiting-for-plc-token';

export interface AddRotationKeyResult {
  status: AddRotationKeyStatus;
  did: string;
  key?: string;
  message: string;
  /** What to do next when the key is not first yet (waiting for the emailed code). */
  next?: NextStep;
}

export async function addRotationKey(
  opts: AddRotationKeyOptions,
  env: AddRotationKeyEnvironment,
): Promise<AddRotationKeyResult> {
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  const plcUrl = opts.plcUrl ?? 'https://plc.directory';
  const did = await didFor(opts.from, fetchImpl, env.resolveTxt);
  if (!isPlcDid(did)) {
    throw new MigrationError(
      'NotPlc',
      `${did} is not a did:plc identity, so it has no rotation keys`,
      'A did:web document is changed by editing its did.json on the web server.',
    );
  }
  const plc = new PlcClient(plcUrl, fetchImpl);
  const readData = async () => {
    try {
      return await plc.getDocumentData(did);
    } catch (err) {
      throw new MigrationError(
        'DidNotResolved',
        describeError(err),
        { kind: 'need-input', field: 'from', reason: 'not-found' },
        { cause: err },
      );
    }
  };
  const data = await readData();
  const existing = await env.keyStore.load();
  if (existing && data.rotationKeys[0] === existing.did()) {
    return {
      status: 'already-first',
      did,
      key: existing.did(),
      message: `${existing.did()} is already the first rotation key of ${did}`,
    };
  }
  const others = data.rotationKeys.filter((k) => k !== existing?.did());
  if (others.length + 1 > PLC_LIMITS.maxRotationKeys) {
    throw new MigrationError(
      'TooManyRotationKeys',
      `${did} already has ${others.length} rotation keys, the most a DID may have`,
      'Nothing was changed. One of them has to be removed first.',
    );
  }
  const doc = await new DidResolver({ plcUrl, fetch: fetchImpl }).resolve(did);
  const pds = normalizeServiceUrl(getPdsEndpoint(doc) ?? '');
  if (!pds) throw new MigrationError('NoPds', `the DID document of ${did} names no PDS`, 'Nothing was changed.');

  const session = new PdsSession(pds, did, fetchImpl);
  try {
    await session.login(await env.password(), await env.authFactorToken?.());
  } catch (err) {
    if (err instanceof XrpcClientError && err.error === 'AuthFactorTokenRequired') {
      throw new MigrationError(
        'AuthFactorTokenRequired',
        `${pds} emailed a sign-in code`,
        { kind: 'need-sign-in-code', reason: 'emailed' },
        { cause: err },
      );
    }
    if (err instanceof XrpcClientError && err.status === 401) {
      throw new MigrationError(
        'SignInRefused',
        `${pds} refused the password`,
        { kind: 'need-input', field: 'password', reason: 'wrong', nothingChanged: true },
        { cause: err },
      );
    }
    throw err;
  }

  let token = await env.plcToken(false);
  if (!token) {
    await session.procedure('com.atproto.identity.requestPlcOperationSignature');
    env.onNotice(
      `${pds} emailed a confirmation code (like ABCDE-12345) to the account's address; it is valid for about 15 minutes.`,
    );
    token = await env.plcToken(true);
    if (!token) {
      return {
        status: 'waiting-for-plc-token',
        did,
        message: 'The server emailed a confirmation code',
        next: { kind: 'need-plc-code', reason: 'emailed', purpose: 'add-rotation-key', nothingChanged: true },
      };
    }
  }

  let key = existing;
  if (!key) {
    key = await generateSigningKey('secp256k1');
    const where = await env.keyStore.save(key);
    env.onNotice(
      `Your rotation key (shown once; saved to ${where} with owner-only access): ${key.privateKeyHex()}\n` +
        `Its public form is ${key.did()}. Keep it offline: with it you can move the account even if its server disappears.`,
      true,
    );
  }
  const rotationKeys = [key.did(), ...data.rotationKeys.filter((k) => k !== key.did())];
  let operation: { rotationKeys?: unknown };
  try {
    ({ operation } = await session.procedure<{ operation: { rotationKeys?: unknown } }>(
      'com.atproto.identity.signPlcOperation',
      {
        token,
        rotationKeys,
        alsoKnownAs: data.alsoKnownAs,
        verificationMethods: data.verificationMethods,
        services: data.services,
      },
      { attempts: 1 },
    ));
  } catch (err) {
    if (err instanceof XrpcClientError && err.status === 400 && /token/i.test(`${err.error} ${err.message}`)) {
      throw new MigrationError(
        'PlcTokenRejected',
        `${pds} did not accept the code (${err.error})`,
        { kind: 'need-plc-code', reason: 'rejected', purpose: 'add-rotation-key' },
        { cause: err },
      );
    }
    throw err;
  }
  const signedKeys = operation.rotationKeys;
  if (!Array.isArray(signedKeys) || signedKeys[0] !== key.did()) {
    throw new MigrationError(
      'OperationNotAsAsked',
      `${pds} signed an operation that does not put ${key.did()} first`,
      'Nothing was submitted. Report this to the server operator.',
    );
  }
  await session.procedure('com.atproto.identity.submitPlcOperation', { operation }, { attempts: 3 });
  const after = await readData();
  if (after.rotationKeys[0] !== key.did()) {
    throw new MigrationError('NotApplied', `the directory does not list ${key.did()} first after the update`, {
      kind: 'run-again',
      reason: 'identity-pending',
    });
  }
  return { status: 'done', did, key: key.did(), message: `${key.did()} is now the first rotation key of ${did}` };
}
