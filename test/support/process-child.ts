/** A child process for crash tests: runs `process` on a store, printing "done" at the end. */
import { Store } from '../../src/store/store.js';

const store = await Store.open(process.argv[2]!);
const r = await store.process();
await store.close();
process.stdout.write(`done ${r.processed.length}\n`);
