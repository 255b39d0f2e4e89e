/**
 * Run by test/store/pipeline.test.ts with CHUNKYARD_ENGINE=wasm: backs up a file into a
 * store and restores it, and reports which codec implementation the workers used.
 */
import { Store } from '../../src/store/store.js';
import { CompressionPool } from '../../src/compress/pool.js';
import { openFileReader } from '../../src/chunking/batcher.js';
import { readFile } from 'node:fs/promises';
import { collect } from './data.js';

const [dir, file] = process.argv.slice(2);
const pool = new CompressionPool({ threads: 1 });
const engine = await pool.codecEngine();
await pool.close();
const store = await Store.open(dir!);
const r = await store.backup(await openFileReader(file!), { target: 'wasm' });
const restored = (await collect(await store.restore(r.id))).equals(await readFile(file!));
await store.close();
process.stdout.write(JSON.stringify({ engine, id: r.id, storedBytes: r.storedBytes, newBytes: r.newBytes, restored }) + '\n');
