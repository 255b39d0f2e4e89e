/**
 * Run as a child process by engine.test.ts: loads the chunking index with the native addon
 * stubbed out (no-native-hooks.ts), tries each way of asking for an engine, and prints what
 * happened as JSON on stdout. Warnings go to stderr, where the parent counts them.
 */
import { register } from 'node:module';

register('./no-native-hooks.js', import.meta.url);
const { createChunker, getHasher } = await import('../../src/chunking/index.js');

function attempt(fn: () => { engine: string }): string {
  try {
    return fn().engine;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `${e.code}: ${e.message}`;
  }
}

const result = {
  auto1: attempt(() => createChunker({})),
  auto2: attempt(() => createChunker({ avgSize: 4096 }, { engine: 'auto' })),
  hasher: attempt(() => getHasher()),
  wasm: attempt(() => createChunker({}, { engine: 'wasm' })),
  native: attempt(() => createChunker({}, { engine: 'native' })),
};
// Let any warning reach stderr before exiting.
await new Promise((resolve) => setImmediate(resolve));
process.stdout.write(JSON.stringify(result) + '\n');
