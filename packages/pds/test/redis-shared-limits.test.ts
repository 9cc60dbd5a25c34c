/**
 * Two `portage serve` processes behind one hostname share one Debian redis-server: a
 * createSession limit is enforced across both (calls to either count against one window), and
 * with Redis stopped both keep serving, with limits counted in memory, saying so in their log
 * and in /metrics.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { redisMissing, startRedis, type TestRedis } from '../../../test/support/redis.ts';
import { type ServeProcess, startServeProcess } from '../../../test/support/serve-process.ts';
import { until } from '../../../test/support/until.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';

/** The reference's createSession limit per identifier and address, the tighter of its two windows. */
const CREATE_SESSION_LIMIT = 30;

async function createSession(server: ServeProcess, identifier: string): Promise<number> {
  const res = await fetch(`${server.url}/xrpc/com.atproto.server.createSession`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identifier, password: 'not-the-password' }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('rate limits shared through Redis', { skip: redisMissing() }, () => {
  let dir: string;
  let redis: TestRedis;
  let plc: RunningPlcDirectory;
  let a: ServeProcess;
  let b: ServeProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-redis-limits-'));
    redis = await startRedis();
    plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dir, 'plc') });
    const env = (name: string) => ({
      PDS_DATA_DIRECTORY: join(dir, name),
      PDS_DID_PLC_URL: plc.url,
      PDS_RATE_LIMITS_ENABLED: 'true',
      PDS_REDIS_SCRATCH_ADDRESS: redis.address,
    });
    [a, b] = await Promise.all([startServeProcess(env('a')), startServeProcess(env('b'))]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await plc?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts sign-in attempts to either process against one limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < CREATE_SESSION_LIMIT; i++) statuses.push(await createSession(i % 2 ? a : b, 'shared.test'));
    assert.ok(
      statuses.every((s) => s !== 429),
      `no attempt within the limit is refused: ${statuses}`,
    );
    // Each process alone has seen only half the limit; together they have used all of it.
    assert.equal(await createSession(a, 'shared.test'), 429);
    assert.equal(await createSession(b, 'shared.test'), 429);
    // Another identifier has its own window.
    assert.notEqual(await createSession(b, 'other.test'), 429);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    assert.match(metrics, /^portage_rate_limits_shared 1$/m);
  });

  it('keeps serving both processes when Redis stops, counting in memory', async () => {
    await redis.stop();
    for (const server of [a, b]) {
      const described = await fetch(`${server.url}/xrpc/com.atproto.server.describeServer`);
      assert.equal(described.status, 200);
      // The shared window is gone with Redis: this process's own count starts afresh.
      assert.notEqual(await createSession(server, 'shared.test'), 429);
      await until('the log to say Redis is unreachable', async () =>
        server.output().includes('Redis is unreachable') ? true : undefined,
      );
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /^portage_rate_limits_shared 0$/m);
    }
  });
});
