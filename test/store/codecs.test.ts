import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { ChunkyardError } from '../../src/errors.js';
import { readPackTable } from '../../src/pack/reader.js';
import { CODEC_LZ4, CODEC_NONE, CODEC_ZSTD } from '../../src/pack/format.js';
import { collect, prng, realData, streamOf } from '../support/data.js';

async function packs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(dir, 'packs'))) for (const f of await readdir(join(dir, 'packs', sub))) out.push(`packs/${sub}/${f}`);
  return out;
}

test('one store mixes lz4, zstd and raw chunks and restores each as stored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-codecs-'));
  try {
    await Store.init(dir, { avgSize: 16384, compression: 'zstd' });
    const store = await Store.open(dir);
    const text = realData(6 << 20);
    const parts = [text.subarray(0, 2 << 20), text.subarray(2 << 20, 4 << 20), text.subarray(4 << 20)];
    const z = await store.backup(streamOf(Buffer.concat([parts[0]!, prng(1, 300_000)])), { target: 'z' });
    await store.setPolicy('l', { compression: 'lz4' });
    const l = await store.backup(streamOf(parts[1]!), { target: 'l' });
    await store.setPolicy('n', { compression: 'none' });
    const n = await store.backup(streamOf(parts[2]!), { target: 'n' });
    assert.ok(z.storedBytes < z.newBytes && l.storedBytes < l.newBytes, 'text compresses under zstd and lz4');
    assert.equal(n.storedBytes, n.newBytes);
    const seen = new Set<number>();
    for (const p of await packs(dir)) for (const e of (await readPackTable(store.backend, p)).entries) seen.add(e.codec);
    assert.deepEqual([...seen].sort(), [CODEC_NONE, CODEC_LZ4, CODEC_ZSTD], 'all three codecs are on disk (raw for the random part)');
    await store.close();
    const reader = await Store.open(dir, { readOnly: true });
    try {
      assert.ok((await collect(await reader.restore(z.id))).equals(Buffer.concat([parts[0]!, prng(1, 300_000)])));
      assert.ok((await collect(await reader.restore(l.id))).equals(parts[1]!));
      assert.ok((await collect(await reader.restore(n.id))).equals(parts[2]!));
    } finally {
      await reader.close();
    }
    // A damaged zstd chunk is reported, never returned.
    for (const p of await packs(dir)) {
      const table = await (async () => {
        const s = await Store.open(dir, { readOnly: true });
        try {
          return await readPackTable(s.backend, p);
        } finally {
          await s.close();
        }
      })();
      const victim = table.entries.find((e) => e.codec === CODEC_ZSTD);
      if (!victim) continue;
      const bytes = await readFile(join(dir, p));
      bytes[victim.offset + Math.floor(victim.storedLength / 2)] ^= 0x10;
      await writeFile(join(dir, p), bytes);
      const s = await Store.open(dir, { readOnly: true });
      try {
        const err = await collect(await s.restore(z.id)).then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof ChunkyardError && err.code === 'CHUNK_CORRUPT', `got ${String(err)}`);
      } finally {
        await s.close();
      }
      break;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
