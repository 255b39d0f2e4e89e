/**
 * Run by test/compress/zstd-fallback.test.ts with CHUNKYARD_ENGINE=wasm and the addon stubbed
 * out (no-native-hooks.ts): restores and checks a zstd store written with the addon, then
 * tries to write zstd chunks; prints what happened as JSON on stdout.
 */
import { register } from 'node:module';
import { readFile } from 'node:fs/promises';

register('./no-native-hooks.js', import.meta.url);
const { Store } = await import('../../src/store/store.js');
const { collect, streamOf } = await import('./data.js');

const [dir, file] = process.argv.slice(2);
const original = await readFile(file!);
const store = await Store.open(dir!);
const out: Record<string, unknown> = {};
try {
  out.restored = (await collect(await store.restore('text'))).equals(original);
  out.rangeRestored = (await collect(await store.restore('text', { start: 1000, end: 90_000 }))).equals(original.subarray(1000, 90_000));
  try {
    await store.backup(streamOf(Buffer.from(original.toString('utf8').split('').reverse().join(''))), { target: 'new' });
    out.write = 'ok';
  } catch (err) {
    out.write = `${(err as { code?: string }).code}: ${(err as Error).message}`;
    out.writeIsChunkyardError = (err as Error).constructor.name === 'ChunkyardError';
  }
} finally {
  await store.close();
}
const report = await Store.check(dir!, { readData: true });
out.checkOk = report.ok;
out.checkedBytes = report.checked.bytes;
out.snapshots = (await (async () => {
  const s = await Store.open(dir!, { readOnly: true });
  try {
    return (await s.snapshots()).map((x) => x.target);
  } finally {
    await s.close();
  }
})());
process.stdout.write(JSON.stringify(out) + '\n');
