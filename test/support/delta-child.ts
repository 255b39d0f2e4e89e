/**
 * A child process for the delta crash test: backs up generations of one "database file"
 * (the same bytes with scattered edits, more each generation) with delta on, and prints
 * "committed <id> <generation>" after each backup resolves. The parent kill -9s it.
 */
import { Store } from '../../src/store/store.js';
import { deltaGeneration, streamOf } from './data.js';

const [dir, first, count] = process.argv.slice(2);
const store = await Store.open(dir!);
for (let i = 0; i < Number(count); i++) {
  const g = Number(first) + i;
  const snap = await store.backup(streamOf(deltaGeneration(g), g + 1), { target: 'db' });
  process.stdout.write(`committed ${snap.id} ${g}\n`);
}
await store.close();
