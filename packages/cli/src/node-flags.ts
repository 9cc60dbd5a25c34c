/**
 * The V8 flags every `portage` process starts with. They are written out three times, because
 * each launcher needs them before any code runs: here (for the benchmarks, which start Portage's
 * processes themselves), in package.json's `start` script and on the first line of bin/portage.js. A test
 * keeps the three the same.
 *
 * --max-semi-space-size=2 (MB; V8's default lets the young generation grow to 16 MB per half).
 * Portage's heap stays small (20-30 MB), and V8 starts a major collection as soon as the room
 * left below its old-generation limit is no larger than the young generation. With a 16 MB
 * young generation and a small old one that is true straight after every major collection, so
 * under a steady stream of requests (uploads, most of all) the server ran one major collection
 * after another, every 50-90 ms, and uploaded 20-35% slower in those runs. A 2 MB young
 * generation ends that loop; the extra minor collections each take under a millisecond.
 *
 * --initial-old-space-size=64 (MB). Given explicitly, it is also the floor of V8's old-generation
 * limit: no major collection starts below it. Without it the limit after a major collection is
 * only about 10 MB above a small live heap, and the network buffers of uploads and downloads (new
 * for every read of a socket, freed only by the next minor collection) count against that room.
 * A server taking uploads, or a migration client moving blobs, then fell into a major collection
 * every 40-60 ms and stayed in that loop: 87 of them in one upload benchmark, with 40% more CPU
 * per upload than a process that had not fallen in, and 25 in one migration client. With the
 * floor, both ran one or two. The heap may grow to 64 MB before collecting; live it is 10-30 MB.
 */
export const PORTAGE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--initial-old-space-size=64'];
