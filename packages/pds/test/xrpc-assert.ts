/** Assertions on the XRPC errors a call through @atproto/api is refused with. */
import assert from 'node:assert/strict';

/** Awaits `call` and requires it to be refused with `status` and the XRPC error name `error`. */
export async function rejects(call: Promise<unknown>, status: number, error: string): Promise<void> {
  await assert.rejects(call, (err: { status?: number; error?: string }) => {
    assert.equal(err.status, status, `status (error ${err.error})`);
    assert.equal(err.error, error);
    return true;
  });
}

/** Awaits `call`, requires it to fail, and gives its XRPC status, error name and message. */
export async function xrpcError(call: Promise<unknown>): Promise<{ status: number; error: string; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { status: number; error: string; message: string };
    return { status: e.status, error: e.error, message: e.message };
  }
  assert.fail('expected the call to fail');
}
