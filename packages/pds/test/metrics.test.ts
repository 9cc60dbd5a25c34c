/** /metrics in Prometheus's text format, read with a Prometheus text parser. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { WebSocket } from 'ws';
import { startTestPds, type TestPds } from './harness.ts';

async function scrape(pds: TestPds, headers: Record<string, string> = {}) {
  const res = await fetch(`${pds.url}/metrics`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  const families = parsePrometheusTextFormat(text);
  const family = (name: string) => {
    const found = families.find((f) => f.name === name);
    assert.ok(found, `${name} is reported`);
    return found;
  };
  const value = (name: string, labels: Record<string, string> = {}) => {
    const sample = family(name).metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    return Number(sample?.value ?? sample?.count ?? 0);
  };
  return { family, value, text };
}

describe('/metrics', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds();
  });
  after(() => pds?.close());

  it('counts requests by method and status, with their latency', async () => {
    const before = await scrape(pds);
    const counted = { method: 'com.atproto.server.describeServer', status: '200' };
    const start = before.value('portage_requests_total', counted);
    for (let i = 0; i < 7; i++) await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`);
    await fetch(`${pds.url}/xrpc/com.atproto.repo.getRecord`);
    const after = await scrape(pds);
    assert.equal(after.value('portage_requests_total', counted) - start, 7);
    assert.ok(
      after.value('portage_requests_total', { method: 'com.atproto.repo.getRecord', status: '400' }) >= 1,
      'a refused call is counted under its status',
    );
    assert.equal(after.family('portage_request_duration_seconds').type, 'HISTOGRAM');
    // The parser folds a labelled histogram's series together: its count is read from the text.
    const count =
      /^portage_request_duration_seconds_count\{method="com\.atproto\.server\.describeServer"\} (\d+)$/m.exec(
        after.text,
      );
    assert.ok(count && Number(count[1]) >= 7, 'the latencies are observed');
  });

  it('reports accounts by status, firehose subscribers, the sequence and bytes on disk', async () => {
    const agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'mia.test', email: 'mia@example.com', password: 'mia-password' });
    await agent.post({ text: 'counted' });
    const socket = new WebSocket(`${pds.url.replace('http', 'ws')}/xrpc/com.atproto.sync.subscribeRepos`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    try {
      const m = await scrape(pds);
      assert.equal(m.value('portage_accounts', { status: 'active' }), 1);
      assert.equal(m.value('portage_accounts', { status: 'takendown' }), 0);
      assert.equal(m.value('portage_firehose_subscribers'), 1);
      assert.equal(m.value('portage_sequencer_seq'), pds.ctx.sequencer.lastSeq());
      assert.ok(m.value('portage_sequencer_seq') > 0);
      assert.ok(m.value('portage_database_bytes', { database: 'account' }) > 0);
      assert.ok(m.value('portage_database_bytes', { database: 'actor stores' }) > 0);
    } finally {
      socket.terminate();
    }
  });

  it('answers only the bearer of PORTAGE_METRICS_TOKEN when one is set', async () => {
    const guarded = await startTestPds({ env: { PORTAGE_METRICS_TOKEN: 'scrape-secret' } });
    try {
      assert.equal((await fetch(`${guarded.url}/metrics`)).status, 401);
      const wrong = await fetch(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 401);
      const m = await scrape(guarded, { authorization: 'Bearer scrape-secret' });
      assert.ok(m.family('portage_requests_total'));
    } finally {
      await guarded.close();
    }
  });
});
