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
        // restore() itself rejects when the damage is in the first window; else the stream errors.
        const err = await s.restore(z.id).then(collect).then(() => undefined, (e: unknown) => e);
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

test('the native LZ4 codec and lz4-napi (the fallback) read each other\'s chunks', async () => {
  const { loadNative } = await import('../../src/chunking/native.js');
  const { compress, uncompress } = await import('lz4-napi');
  const { blake3 } = await import('hash-wasm');
  const native = loadNative();
  const text = realData(1 << 20);
  const lengths = Uint32Array.of(100_000, 300_000, 648_576);
  const pieces = Uint32Array.of(0, lengths[0]!, lengths[0]!, lengths[1]!, lengths[0]! + lengths[1]!, lengths[2]!);
  const bytes = new Uint8Array(text.length);
  const [stored, codecs] = native.compressInto(CODEC_LZ4, text, pieces, bytes, 3);
  let pos = 0;
  let raw = 0;
  for (let i = 0; i < lengths.length; i++) {
    assert.equal(codecs[i], CODEC_LZ4);
    const piece = bytes.subarray(pos, pos + stored[i]!);
    assert.ok((await uncompress(Buffer.from(piece))).equals(text.subarray(raw, raw + lengths[i]!)), `lz4-napi reads native chunk ${i}`);
    pos += stored[i]!;
    raw += lengths[i]!;
  }
  const chunk = text.subarray(0, 200_000);
  const fromNapi = await compress(chunk);
  const fp = Buffer.from(await blake3(chunk), 'hex');
  const quad = Uint32Array.of(0, fromNapi.length, chunk.length, CODEC_LZ4);
  const out = new Uint8Array(chunk.length);
  const [failed, reason] = native.decodeInto(fromNapi, quad, fp, null, out);
  assert.equal(failed, -1, reason);
  assert.ok(Buffer.from(out).equals(chunk), 'native reads an lz4-napi chunk');
  const [index] = native.decodeInto(fromNapi, quad, Buffer.alloc(32), null, out);
  assert.equal(index, 0);
});

test('a store\'s zstd level (init zstdLevel) is recorded in config.json, used for new chunks, and needs nothing to read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-zstd-level-'));
  try {
    const text = realData(3 << 20);
    const stored: Record<string, number> = {};
    for (const level of [1, 19, undefined]) {
      const at = join(dir, `s${level ?? 'default'}`);
      const config = await Store.init(at, { avgSize: 16384, compression: 'zstd', ...(level === undefined ? {} : { zstdLevel: level }) });
      assert.equal(config.zstdLevel, level);
      const onDisk = JSON.parse((await readFile(join(at, 'config.json'))).toString()) as { zstdLevel?: number };
      assert.equal(onDisk.zstdLevel, level, 'the level is in config.json (absent: the build default)');
      const store = await Store.open(at);
      const snap = await store.backup(streamOf(text), { target: 't' });
      stored[String(level)] = snap.storedBytes;
      await store.close();
      const reader = await Store.open(at, { readOnly: true });
      try {
        assert.ok((await collect(await reader.restore(snap.id))).equals(text));
        for (const p of await packs(at)) for (const e of (await readPackTable(reader.backend, p)).entries) assert.ok(e.codec === CODEC_ZSTD || e.codec === CODEC_NONE);
      } finally {
        await reader.close();
      }
    }
    assert.ok(stored['19']! < stored['1']!, `level 19 stores fewer bytes than level 1 (${stored['19']} vs ${stored['1']})`);
    // Bad levels are refused before anything is written.
    for (const bad of [0, 20, 2.5, Number.NaN, '3' as unknown as number]) {
      const at = join(dir, 'bad');
      await assert.rejects(Store.init(at, { compression: 'zstd', zstdLevel: bad }), (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT');
      assert.deepEqual(await readdir(at).catch(() => []), [], 'nothing written');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a config whose zstdLevel is not 1..19 is refused whole (FORMAT_UNSUPPORTED), never used', async () => {
  const { sealJson, openSealedJson } = await import('../../src/util/sealed-json.js');
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-zstd-level-bad-'));
  try {
    await Store.init(dir, { compression: 'zstd', zstdLevel: 7 });
    const config = openSealedJson(await readFile(join(dir, 'config.json')), 'config') as Record<string, unknown>;
    for (const bad of [0, 23, 'fast', 4.5]) {
      await writeFile(join(dir, 'config.json'), sealJson({ ...config, zstdLevel: bad }));
      await assert.rejects(Store.open(dir), (e: unknown) => e instanceof ChunkyardError && e.code === 'FORMAT_UNSUPPORTED' && /zstd level/.test(e.message));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an encrypted store keeps its zstd level and seals chunks compressed at it', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'chunkyard-zstd-level-crypt-'));
  try {
    const text = realData(2 << 20);
    await Store.init(dir, { encryption: true, password: 'pw', avgSize: 16384, compression: 'zstd', zstdLevel: 9 });
    const store = await Store.open(dir, { password: 'pw' });
    try {
      assert.equal(store.config.zstdLevel, 9);
      const snap = await store.backup(streamOf(text), { target: 't' });
      assert.ok(snap.storedBytes < snap.newBytes, `text is compressed before it is sealed (${snap.storedBytes} of ${snap.newBytes})`);
      assert.ok((await collect(await store.restore(snap.id))).equals(text));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
