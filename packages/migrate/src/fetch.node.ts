/**
 * Node's fetch gives up when response headers take over 5 minutes, or a body pauses that long
 * (undici's headersTimeout/bodyTimeout). A server importing a very large repo answers only after
 * it has processed the whole CAR, which can legitimately take longer. This returns a fetch whose
 * connections have no header timeout and a 30-minute body-idle timeout; the engine sets its own
 * per-request timeouts where an answer should be quick.
 *
 * Node bundles undici without exporting it, so the Agent class is taken from the global
 * dispatcher's constructor. If that ever stops working, plain fetch is returned: the only cost
 * is the 5-minute limit.
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

export async function fetchWithoutClientTimeouts(): Promise<typeof fetch> {
  const holder = globalThis as unknown as Record<symbol, { constructor?: unknown } | undefined>;
  if (!holder[GLOBAL_DISPATCHER]) {
    // The bundled undici (and its global dispatcher) loads on first use.
    await fetch('data:,')
      .then((r) => r.arrayBuffer())
      .catch(() => undefined);
  }
  const Agent = holder[GLOBAL_DISPATCHER]?.constructor as
    (new (opts: { headersTimeout: number; bodyTimeout: number }) => unknown) | undefined;
  if (typeof Agent !== 'function' || Agent.name !== 'Agent') return globalThis.fetch.bind(globalThis);
  const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 30 * 60_000 });
  return ((input: RequestInfo | URL, init?: RequestInit) =>
    globalThis.fetch(input, { ...init, dispatcher } as RequestInit)) as typeof fetch;
}
