/**
 * A child process for crash tests: backs up generations of seeded data into a store, one
 * after another, and prints "committed <id> <seed> <length>" after each backup resolves.
 * The parent kill -9s it at random moments and checks every printed snapshot restores.
 */
import { Store } from '../../src/store/store.js';
import { prng, streamOf } from './data.js';

const [dir, firstSeed, count] = process.argv.slice(2);
const store = await Store.open(dir!);
for (let i = 0; i < Number(count); i++) {
  const seed = Number(firstSeed) + i;
  // Generations share most of their data, as backups do: a common base plus a changed part.
  const data = Buffer.concat([prng(1000, 3 << 20), prng(seed, (1 << 20) * (1 + (seed % 3))), prng(1001, 1 << 20)]);
  const snap = await store.backup(streamOf(data, seed), { target: `t${seed % 3}` });
  process.stdout.write(`committed ${snap.id} ${seed} ${data.length}\n`);
}
await store.close();
