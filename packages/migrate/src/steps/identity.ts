/**
 * Step "identity": the one irreversible step. The DID document is pointed at the new server: for
 * did:plc, an operation the old server signs (with the emailed PLC token, asked for only now so
 * it cannot expire while data moves), submitted through the new server; for did:web, the
 * document to publish, then checked. A user-held recovery key goes first in the rotation keys.
 */
import { generateSigningKey } from '@portage/atproto/crypto';
import {
  type DidDocument,
  getAtprotoSigningKey,
  getPdsEndpoint,
  sameServiceUrl,
} from '@portage/atproto/identity/did-document';
import { PlcClient } from '@portage/atproto/plc/client';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { MigrationError } from '../errors.ts';
import type { Journal } from '../journal.ts';
import { describeNextStep, type NextStep } from '../next-steps.ts';
import { sleep } from '../retry.ts';
import { type RunContext, type RunState, saveState, type StepOutcome, Waiting } from './run.ts';

interface RecommendedCredentials {
  rotationKeys?: string[];
  alsoKnownAs?: string[];
  verificationMethods?: Record<string, string>;
  services?: Record<string, { type: string; endpoint: string }>;
}

/** PLC tokens the old server may refuse in one run before it stops asking for new ones. */
const MAX_PLC_TOKEN_REFUSALS = 3;

export async function updateIdentity(ctx: RunContext, state: RunState): Promise<StepOutcome> {
  const neu = state.neu!;
  const journal = state.journal!;
  const [rec, doc] = await Promise.all([
    neu.query<RecommendedCredentials>('com.atproto.identity.getRecommendedDidCredentials'),
    ctx.didResolver.resolve(state.did, { noCache: true }),
  ]);
  const newKey = rec.verificationMethods?.atproto;
  const endpoint = rec.services?.atproto_pds?.endpoint ?? ctx.to;
  journal.newPdsEndpoint = endpoint;
  await saveState(ctx, state);
  if (sameServiceUrl(getPdsEndpoint(doc), endpoint) && getAtprotoSigningKey(doc) === newKey) {
    return { summary: 'the DID document already names the new server', skipped: true };
  }
  if (state.did.startsWith('did:web:')) return didWebIdentity(ctx, state, doc, rec);

  let rotationKeys = rec.rotationKeys ?? [];
  if (ctx.env.recoveryKey) {
    let key = await ctx.env.recoveryKey.load();
    if (!key) {
      key = await generateSigningKey('secp256k1');
      const where = await ctx.env.recoveryKey.save(key);
      ctx.emit({
        type: 'notice',
        step: 'identity',
        secret: true,
        message:
          `Your recovery key (shown once; saved to ${where} with owner-only access): ${key.privateKeyHex()}\n` +
          `Its public form is ${key.did()}. Keep it offline: it can take the account back even if the new server disappears.`,
      });
    }
    rotationKeys = [key.did(), ...rotationKeys.filter((k) => k !== key.did())];
    journal.recoveryKeyDid = key.did();
    await saveState(ctx, state);
  }

  // An operation signed in an earlier run (then killed) is still good if nothing came after it.
  const pending = journal.signedOperation;
  if (pending) {
    const log = await new PlcClient(ctx.plcUrl, ctx.fetch).getAuditLog(state.did);
    const last = log.filter((e) => !e.nullified).at(-1);
    if (last && pending.prev === last.cid) {
      await submit(ctx, state, pending);
      return 'submitted the operation signed in the previous run; the DID now points to the new server';
    }
    journal.signedOperation = undefined;
    await saveState(ctx, state);
  }

  let token =
    (await ctx.env.credentials.plcToken(false)) ?? (await emailPlcToken(ctx, state, 'The old server emailed a'));
  let operation: Record<string, unknown> | undefined;
  let refused = 0;
  while (!operation) {
    try {
      ({ operation } = await state.old!.procedure<{ operation: Record<string, unknown> }>(
        'com.atproto.identity.signPlcOperation',
        {
          token,
          rotationKeys,
          alsoKnownAs: rec.alsoKnownAs,
          verificationMethods: rec.verificationMethods,
          services: rec.services,
        },
      ));
    } catch (err) {
      if (!(err instanceof XrpcClientError && err.status === 400 && /token/i.test(`${err.error} ${err.message}`))) {
        throw err;
      }
      // A caller that gives the same wrong code every time must not have codes emailed forever.
      if (++refused >= MAX_PLC_TOKEN_REFUSALS) {
        throw new MigrationError(
          'PlcTokenRejected',
          `the old server refused ${MAX_PLC_TOKEN_REFUSALS} PLC tokens in a row (${err.error})`,
          { kind: 'need-plc-code', reason: 'rejected' },
          { cause: err },
        );
      }
      // The code expired (they last about 15 minutes), was mistyped, or was used by a run that
      // was stopped while signing. Asking for a new one now saves the user a run.
      token = await emailPlcToken(
        ctx,
        state,
        `The old server did not accept the PLC token (${err.error}). The identity was NOT changed; all data stays copied. It emailed a new`,
      );
    }
  }
  journal.signedOperation = operation as Journal['signedOperation'];
  await saveState(ctx, state);
  await submit(ctx, state, operation);
  return 'the DID now points to the new server';
}

/**
 * Has the old server email a PLC token and asks for it. Stops the run (waiting-for-plc-token)
 * when it cannot be asked now: the next run is given it up front.
 */
async function emailPlcToken(ctx: RunContext, state: RunState, emailed: string): Promise<string> {
  await state.old!.procedure('com.atproto.identity.requestPlcOperationSignature');
  state.journal!.plcTokenRequestedAt = new Date().toISOString();
  await saveState(ctx, state);
  ctx.emit({
    type: 'notice',
    step: 'identity',
    message: `${emailed} confirmation code (PLC token, like ABCDE-12345) to the account's address. It is valid for about 15 minutes.`,
  });
  const token = await ctx.env.credentials.plcToken(true);
  if (token) return token;
  const message = 'All data is copied and verified; the identity update waits for the emailed code (PLC token).';
  const nextStep: NextStep = { kind: 'need-plc-code', reason: 'emailed' };
  ctx.emit({ type: 'waiting-for-plc-token', step: 'identity', message, next: describeNextStep(nextStep), nextStep });
  throw new Waiting(message);
}

async function submit(ctx: RunContext, state: RunState, operation: Record<string, unknown>): Promise<void> {
  await state.neu!.procedure('com.atproto.identity.submitPlcOperation', { operation });
  const endpoint = state.journal!.newPdsEndpoint ?? ctx.to;
  await waitForDocument(
    ctx,
    state,
    (doc) => sameServiceUrl(getPdsEndpoint(doc), endpoint),
    'the PLC directory does not show the new server yet',
  );
  state.journal!.identityUpdatedAt = new Date().toISOString();
  state.journal!.signedOperation = undefined;
  await saveState(ctx, state);
}

async function waitForDocument(
  ctx: RunContext,
  state: RunState,
  ok: (doc: DidDocument) => boolean,
  what: string,
): Promise<DidDocument> {
  for (let attempt = 0; ; attempt++) {
    const doc = await ctx.didResolver.resolve(state.did, { noCache: true });
    if (ok(doc)) return doc;
    if (attempt >= 20) {
      throw new MigrationError('IdentityNotUpdated', what, { kind: 'run-again', reason: 'identity-pending' });
    }
    await sleep(500);
  }
}

/** did:web: we cannot change the document; tell the user exactly what to publish, then check it. */
function didWebIdentity(ctx: RunContext, state: RunState, doc: DidDocument, rec: RecommendedCredentials): never {
  const did = state.did;
  const newKey = rec.verificationMethods?.atproto;
  const wanted: DidDocument = {
    ...doc,
    verificationMethod: [
      ...(doc.verificationMethod ?? []).filter((m) => !m.id.endsWith('#atproto')),
      ...(newKey
        ? [
            {
              id: `${did}#atproto`,
              type: 'Multikey',
              controller: did,
              publicKeyMultibase: newKey.replace(/^did:key:/, ''),
            },
          ]
        : []),
    ],
    service: [
      ...(doc.service ?? []).filter((s) => !s.id.endsWith('#atproto_pds')),
      {
        id: '#atproto_pds',
        type: 'AtprotoPersonalDataServer',
        serviceEndpoint: state.journal!.newPdsEndpoint ?? ctx.to,
      },
    ],
  };
  const host = decodeURIComponent(did.slice('did:web:'.length));
  ctx.emit({
    type: 'notice',
    step: 'identity',
    message: `Publish this document at https://${host}/.well-known/did.json (it changes the #atproto key and the #atproto_pds service):\n${JSON.stringify(wanted, null, 2)}`,
  });
  throw new MigrationError(
    'DidWebNotUpdated',
    `the did:web document at ${host} does not name ${ctx.to} with the new signing key yet`,
    { kind: 'publish-did-document', host },
  );
}
