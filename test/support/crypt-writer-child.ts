/**
 * A child process for the encryption tests: opens an encrypted store (password from
 * CHUNKYARD_PASSWORD) and backs up `count` streams of `bytes` pseudo-random bytes each, seeds
 * from `firstSeed` on, printing "committed <id> <seed> <length>" after each.
 */
import { Store } from '../../src/store/store.js';
import { prng, streamOf } from './data.js';

const [dir, firstSeed, count, bytes, policy] = process.argv.slice(2);
const store = await Store.open(dir!);
for (let i = 0; i < Number(count); i++) {
  const seed = Number(firstSeed) + i;
  const data = prng(seed, Number(bytes));
  const snap = await store.backup(streamOf(data, seed), { target: `w${seed % 4}`, policy: (policy as 'immediate' | 'disabled' | undefined) ?? 'immediate' });
  process.stdout.write(`committed ${snap.id} ${seed} ${data.length}\n`);
}
await store.close();
