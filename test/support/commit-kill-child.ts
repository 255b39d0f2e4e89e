/**
 * A child process for test/store/commit-crash.test.ts: one backup of seeded data, then
 * kill -9 of itself the moment the backup resolved, before close(): the index cache write of
 * its pack and the removal of its session object may still be under way (ChunkSink.seal,
 * Store.backup). Prints "committed <id> <newChunks>" first.
 */
import { Store } from '../../src/store/store.js';
import { prng, streamOf } from './data.js';

const [dir, seed] = process.argv.slice(2);
const store = await Store.open(dir!);
const data = Buffer.concat([prng(2000, 2 << 20), prng(Number(seed), 1 << 20)]);
const snap = await store.backup(streamOf(data, Number(seed)), { target: 't' });
process.stdout.write(`committed ${snap.id} ${snap.newChunks}\n`, () => process.kill(process.pid, 'SIGKILL'));
