/** Test helpers that reach into a store's files: find packs and recipes, flip bytes, truncate. */
import { mkdtemp, open, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBackend } from '../../src/backend/fs.js';
import type { Backend } from '../../src/backend/types.js';
import { CODEC_DELTA } from '../../src/pack/codecs.js';
import { readPackTable, type PackTable } from '../../src/pack/reader.js';
import { readManifest, type SnapshotManifest } from '../../src/snapshot/manifest.js';
import { RecipeReader, type RecipeEntry } from '../../src/snapshot/recipe.js';
import { initBlake3 } from '../../src/util/blake3.js';
import { Store } from '../../src/store/store.js';
import { streamOf } from './data.js';

/**
 * What a store's packs hold, each fingerprint counted once (its first copy met): raw and
 * stored bytes of all chunks, and the count and stored bytes of the delta chunks (codec 3).
 */
export async function distinctPackChunks(backend: Backend): Promise<{ rawBytes: number; storedBytes: number; deltaChunks: number; deltaStoredBytes: number }> {
  const seen = new Set<string>();
  const out = { rawBytes: 0, storedBytes: 0, deltaChunks: 0, deltaStoredBytes: 0 };
  for await (const o of backend.list('packs/')) {
    if (!o.name.endsWith('.pack')) continue;
    for (const e of (await readPackTable(backend, o.name)).entries) {
      const k = e.fingerprint.toString('hex');
      if (seen.has(k)) continue;
      seen.add(k);
      out.rawBytes += e.rawLength;
      out.storedBytes += e.storedLength;
      if (e.codec !== CODEC_DELTA) continue;
      out.deltaChunks++;
      out.deltaStoredBytes += e.storedLength;
    }
  }
  return out;
}

/** Object names of every pack (packs/xx/….pack), sorted. */
export async function packNames(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(join(root, 'packs')).catch(() => [] as string[])) {
    for (const f of await readdir(join(root, 'packs', sub))) if (f.endsWith('.pack')) out.push(`packs/${sub}/${f}`);
  }
  return out.sort();
}

export async function packTable(root: string, name: string): Promise<PackTable> {
  await initBlake3();
  return readPackTable(new FsBackend(root), name);
}

export async function manifestOf(root: string, id: string): Promise<SnapshotManifest> {
  await initBlake3();
  return readManifest(new FsBackend(root), id);
}

/** Every entry of a snapshot's recipe, in order. */
export async function recipeEntries(root: string, id: string): Promise<RecipeEntry[]> {
  const m = await manifestOf(root, id);
  // Checked against the manifest's size and checksum, as a restore reads it.
  const r = await RecipeReader.open(new FsBackend(root), m.recipe!.name, { expect: m.recipe! });
  const out: RecipeEntry[] = [];
  for await (const block of r.entries()) out.push(...block);
  return out;
}

/** XORs one byte of a file (0x01 by default). */
export async function flipByte(file: string, position: number, mask = 0x01): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0]! ^= mask;
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}

export async function cut(file: string, length: number): Promise<void> {
  await truncate(file, length);
}

/** Every file under root (relative paths) with its size, sorted: a fingerprint of the store's state. */
export async function listing(root: string, skip: (rel: string) => boolean = (rel) => rel.startsWith('index/') || rel === 'lock' || rel.startsWith('tmp~')): Promise<string[]> {
  // A skipped folder skips everything under it.
  const skipped = (name: string) => name.split('/').some((_, i, parts) => skip(parts.slice(0, i + 1).join('/')));
  return (await filesWithSizes(root))
    .filter((f) => !skipped(f.name))
    .map((f) => `${f.name} ${f.size}`)
    .sort();
}

/**
 * Runs `fn` on a store made with `init` in a fresh temporary directory (named after `prefix`)
 * and opened with `openOptions`; closes the store and removes the directory afterwards.
 */
export async function withTempStore(prefix: string, init: Parameters<typeof Store.init>[1], openOptions: Parameters<typeof Store.open>[1], fn: (store: Store, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `chunkyard-${prefix}-`));
  try {
    await Store.init(dir, init);
    const store = await Store.open(dir, openOptions);
    try {
      await fn(store, dir);
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Makes a store in `dir` (small chunks and packs by default, so a few MiB span several packs)
 * and backs up each of `data` in turn as target `x`; returns the snapshot ids in order.
 */
export async function storeWithSnapshots(dir: string, data: readonly Uint8Array[], init: Parameters<typeof Store.init>[1] = { avgSize: 16384, packSize: 1 << 20 }): Promise<string[]> {
  await Store.init(dir, init);
  const s = await Store.open(dir, { threads: 1 });
  const ids: string[] = [];
  try {
    for (const d of data) ids.push((await s.backup(streamOf(d, 1), { target: 'x' })).id);
  } finally {
    await s.close();
  }
  return ids;
}

/** Every file under `dir` (paths relative to it) with its size; none when `dir` does not exist. */
export async function filesWithSizes(dir: string): Promise<{ name: string; size: number }[]> {
  const out: { name: string; size: number }[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(join(dir, rel), { withFileTypes: true });
    } catch {
      return; // gone (or never made): nothing under it
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else out.push({ name: r, size: (await stat(join(dir, r))).size });
    }
  };
  await walk('');
  return out;
}
