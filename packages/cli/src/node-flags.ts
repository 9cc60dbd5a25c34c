/**
 * The V8 flags every `portage` process starts with. They are written out three times, because
 * each launcher needs them before any code runs: here (for the benchmarks, which start Portage's
 * processes themselves), in package.json's `start` script and on main.ts's first line. A test
 * keeps the three the same.
 *
 * --max-semi-space-size=2 (MB; V8's default lets the young generation grow to 16 MB per half).
 * Portage's heap stays small (20-30 MB), and V8 starts a major collection as soon as the room
 * left below its old-generation limit is no larger than the young generation. With a 16 MB
 * young generation and a small old one that is true straight after every major collection, so
 * under a steady stream of requests (uploads, most of all) the server ran one major collection
 * after another, every 50-90 ms, and uploaded 20-35% slower in those runs. A 2 MB young
 * generation ends that loop; the extra minor collections each take under a millisecond.
 */
export const PORTAGE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
