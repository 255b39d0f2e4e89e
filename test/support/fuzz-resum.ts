/**
 * Structure-aware mutations for the fuzz driver (test/support/fuzz.ts): change one field of a
 * binary object or one value of a sealed JSON object to an odd value, then recompute every
 * checksum that covers it, as LevelDB's corruption tests "re-checksum". Random flips are caught
 * by checksums before a parser sees them; these reach the parsers' own bounds checks (an
 * offset past the end, a length of 4 GiB, a field of the wrong type) with the checksums intact.
 *
 * Unencrypted stores only: in an encrypted store these objects are sealed with the store's
 * keys, and a forger without them is what the seals are for (test/crypto/encryption.test.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { headerSum, PACK_ENTRY_SIZE, PACK_FOOTER_SIZE, PACK_HEADER_SIZE } from '../../src/pack/format.js';
import { RECIPE_ENTRY_SIZE, RECIPE_FOOTER_SIZE, RECIPE_HEADER_SIZE, SEEK_EVERY, seekValueSize } from '../../src/snapshot/recipe.js';
import { blake3, blake3Hex, initBlake3 } from '../../src/util/blake3.js';
import { sealJson } from '../../src/util/sealed-json.js';
import type { Prng } from './prng.js';

/** Kinds `resum` knows how to change with their checksums intact. */
export const RESUM_KINDS = ['pack', 'table', 'recipe', 'manifest', 'config', 'policies', 'condemned', 'session'] as const;

function oddU32(rnd: Prng, old: number, size: number): number {
  const pool = [0, 1, 2, 3, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, old + 1, old - 1, old * 2, size, size - 1, size + 1, rnd.next()];
  return pool[rnd.int(0, pool.length - 1)]! >>> 0;
}

function oddU64(rnd: Prng, old: bigint): bigint {
  const pool = [0n, 1n, old + 1n, old > 0n ? old - 1n : 0n, old * 2n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(rnd.next())];
  return pool[rnd.int(0, pool.length - 1)]! & (2n ** 64n - 1n);
}

function oddJson(rnd: Prng, old: unknown): unknown {
  const pool: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53 + 2, 1e308, '', 'x', '../../etc/passwd', 'a'.repeat(5000), [], {}, [1, 2], { a: 1 }];
  if (typeof old === 'number') pool.push(old + 1, old - 1, -old, old * 1024);
  if (typeof old === 'string') pool.push(old.slice(0, -1), `${old}0`, old.toUpperCase());
  return pool[rnd.int(0, pool.length - 1)];
}

/** Changes one field of a pack (or its table object) and recomputes tableHash and headerSum. */
function resumPack(b: Buffer, rnd: Prng, isTable: boolean): string {
  const size = b.length;
  const footer = size - PACK_FOOTER_SIZE;
  const count = b.readUInt32LE(footer);
  const tableOffset = isTable ? 0 : Number(b.readBigUInt64LE(footer + 8));
  const tableStart = isTable ? 0 : tableOffset;
  let what: string;
  const choice = rnd.int(0, 9);
  if (choice < 6 && count > 0) {
    const i = rnd.int(0, count - 1);
    const at = tableStart + PACK_ENTRY_SIZE * i;
    const field = (['offset', 'storedLength', 'rawLength', 'codec', 'fingerprint', 'padding'] as const)[rnd.int(0, 5)];
    if (field === 'codec') {
      const v = [0, 1, 2, 3, 4, 255][rnd.int(0, 5)]!;
      b[at + 44] = v;
      what = `entry ${i} codec ${v}`;
    } else if (field === 'fingerprint') {
      b[at + rnd.int(0, 31)] ^= 1 << rnd.int(0, 7);
      what = `entry ${i} fingerprint bit`;
    } else if (field === 'padding') {
      b[at + 45 + rnd.int(0, 2)] = 0xff;
      what = `entry ${i} padding`;
    } else {
      const off = { offset: 32, storedLength: 36, rawLength: 40 }[field];
      const v = oddU32(rnd, b.readUInt32LE(at + off), size);
      b.writeUInt32LE(v, at + off);
      what = `entry ${i} ${field} ${v}`;
    }
  } else if (choice < 8) {
    const v = oddU32(rnd, count, count);
    b.writeUInt32LE(v, footer);
    what = `footer entryCount ${v}`;
  } else if (choice < 9 && !isTable) {
    const v = oddU64(rnd, BigInt(tableOffset));
    b.writeBigUInt64LE(v, footer + 8);
    what = `footer tableOffset ${v}`;
  } else if (!isTable) {
    const v = [0, 1, 2, 3, 0xffffffff][rnd.int(0, 4)]!;
    b.writeUInt32LE(v, 8);
    what = `header version ${v}`;
  } else {
    b.writeUInt32LE(oddU32(rnd, 0, 0), footer + 4);
    what = 'footer reserved';
  }
  // The sums, over what the reader will take as the table (as far as it lies in the file).
  const n = b.readUInt32LE(footer);
  const start = isTable ? 0 : Number(b.readBigUInt64LE(footer + 8));
  const end = start + PACK_ENTRY_SIZE * n;
  if (start >= 0 && end <= footer && end >= start) blake3(b.subarray(start, end)).copy(b, footer + 16, 0, 16);
  if (!isTable && size >= PACK_HEADER_SIZE) b.writeUInt32LE(headerSum(b.subarray(0, PACK_HEADER_SIZE)), 12);
  return what;
}

/**
 * Where a recipe's parts lie, from its header and footer as they are (docs/format.md,
 * "Recipes"): entry count n, seek value size s, seek values k, seek table at seekAt.
 */
function recipeLayout(b: Buffer): { size: number; version: number; footer: number; n: number; s: number; k: number; seekAt: number } {
  const size = b.length;
  const version = b.readUInt32LE(8);
  const footer = size - RECIPE_FOOTER_SIZE;
  const n = Number(b.readBigUInt64LE(footer));
  return { size, version, footer, n, s: seekValueSize(version), k: Math.ceil(n / SEEK_EVERY), seekAt: RECIPE_HEADER_SIZE + RECIPE_ENTRY_SIZE * n };
}

/** Changes one field of a recipe and recomputes its block hashes; returns the new table digest. */
function resumRecipe(b: Buffer, rnd: Prng): { what: string; digest: string } {
  const { size, footer, n, s, k, seekAt } = recipeLayout(b);
  let what: string;
  const choice = rnd.int(0, 9);
  if (choice < 6 && n > 0) {
    const i = rnd.int(0, n - 1);
    const at = RECIPE_HEADER_SIZE + RECIPE_ENTRY_SIZE * i;
    const field = (['packRef', 'offset', 'storedLength', 'rawLength', 'codec', 'flags'] as const)[rnd.int(0, 5)];
    if (field === 'codec' || field === 'flags') {
      const v = [0, 1, 2, 3, 4, 255][rnd.int(0, 5)]!;
      b[at + (field === 'codec' ? 48 : 49)] = v;
      what = `entry ${i} ${field} ${v}`;
    } else {
      const off = { packRef: 32, offset: 36, storedLength: 40, rawLength: 44 }[field];
      const v = oddU32(rnd, b.readUInt32LE(at + off), size);
      b.writeUInt32LE(v, at + off);
      what = `entry ${i} ${field} ${v}`;
    }
  } else if (choice < 7 && k > 0) {
    const j = rnd.int(0, k - 1);
    const v = oddU64(rnd, b.readBigUInt64LE(seekAt + s * j));
    b.writeBigUInt64LE(v, seekAt + s * j);
    what = `seek ${j} streamOffset ${v}`;
  } else {
    const field = (['entryCount', 'logicalBytes', 'packCount', 'seekEvery', 'version'] as const)[rnd.int(0, 4)];
    if (field === 'entryCount' || field === 'logicalBytes') {
      const at = footer + (field === 'entryCount' ? 0 : 8);
      const v = oddU64(rnd, b.readBigUInt64LE(at));
      b.writeBigUInt64LE(v, at);
      what = `footer ${field} ${v}`;
    } else if (field === 'version') {
      const v = [0, 1, 2, 3, 4][rnd.int(0, 4)]!;
      b.writeUInt32LE(v, 8);
      what = `header version ${v}`;
    } else {
      const at = footer + (field === 'packCount' ? 16 : 20);
      const v = oddU32(rnd, b.readUInt32LE(at), 4096);
      b.writeUInt32LE(v, at);
      what = `footer ${field} ${v}`;
    }
  }
  return { what, digest: recipeDigest(b) };
}

/** Recomputes a recipe's block hashes (v2/v3) over its entries as they lie; returns the table digest its manifest holds. */
function recipeDigest(b: Buffer): string {
  const { size, n, s, k, seekAt } = recipeLayout(b);
  if (s === 40 && seekAt + s * k <= size) {
    for (let j = 0; j < k; j++) {
      const from = RECIPE_HEADER_SIZE + RECIPE_ENTRY_SIZE * SEEK_EVERY * j;
      const to = RECIPE_HEADER_SIZE + RECIPE_ENTRY_SIZE * Math.min(n, SEEK_EVERY * (j + 1));
      blake3(b.subarray(from, to)).copy(b, seekAt + s * j + 8);
    }
  }
  return s === 40 ? blake3Hex(Buffer.concat([b.subarray(0, RECIPE_HEADER_SIZE), b.subarray(Math.min(seekAt, size))])) : blake3Hex(b);
}

/**
 * Rewrites recipe `object` of the unencrypted store `dir` with `edit`, then recomputes its
 * block hashes and reseals the manifest that names it with the new table digest, so that the
 * edit reaches the reader's field checks (regression tests use it to place an exact edit).
 */
export async function rewriteRecipe(dir: string, object: string, edit: (b: Buffer) => void): Promise<void> {
  await initBlake3();
  const path = join(dir, object);
  const b = await readFile(path);
  edit(b);
  const digest = recipeDigest(b);
  await writeFile(path, b);
  await resealManifestOf(dir, object, digest);
}

/** Reseals the manifest naming recipe `object` with its new digest; false when none names it. */
async function resealManifestOf(dir: string, object: string, digest: string): Promise<boolean> {
  const id = /^recipes\/([0-9a-f]{16})-/.exec(object)?.[1];
  const mpath = join(dir, 'snapshots', `${id}.json`);
  const m = JSON.parse(await readFile(mpath, 'utf8').catch(() => '{}')) as Record<string, unknown>;
  const r = m['recipe'] as { name?: string; blake3?: string } | undefined;
  if (!r || r.name !== object) return false;
  r.blake3 = digest;
  delete m['checksum'];
  await writeFile(mpath, sealJson(m));
  return true;
}

/** Reseals sealed JSON object `object` of `dir` after `edit` changed its body. */
export async function resealJson(dir: string, object: string, edit: (body: Record<string, unknown>) => void): Promise<void> {
  await initBlake3();
  const path = join(dir, object);
  const body = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  delete body['checksum'];
  edit(body);
  await writeFile(path, sealJson(body));
}

/** One value somewhere in a JSON tree set to an odd one (or a key removed). */
function jsonMutate(body: Record<string, unknown>, rnd: Prng): string {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]): void => {
    if (path.length > 0) paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const key of Object.keys(v)) walk((v as Record<string, unknown>)[key], [...path, key]);
  };
  walk(body, []);
  const path = paths[rnd.int(0, paths.length - 1)]!;
  let parent: Record<string | number, unknown> = body;
  for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (rnd.int(0, 5) === 0 && !Array.isArray(parent)) {
    delete parent[last];
    return `${path.join('.')} removed`;
  }
  const v = oddJson(rnd, parent[last]);
  parent[last] = v;
  return `${path.join('.')} = ${JSON.stringify(v)?.slice(0, 40)}`;
}

/**
 * Applies one structure-aware mutation to `object` of the (unencrypted) store at `dir`,
 * checksums recomputed; for a recipe the manifest that names it is resealed to match.
 * Returns what was done, or undefined when the object is not of a kind it knows.
 */
export async function resum(dir: string, object: string, kind: string, rnd: Prng): Promise<string | undefined> {
  await initBlake3();
  const path = join(dir, object);
  const b = await readFile(path);
  if (kind === 'pack' || kind === 'table') {
    if (b.length < PACK_FOOTER_SIZE + (kind === 'pack' ? PACK_HEADER_SIZE : 0)) return undefined;
    const what = resumPack(b, rnd, kind === 'table');
    await writeFile(path, b);
    // Half the time the pack's table object says the same (as if the writer had written it so).
    if (kind === 'pack' && rnd.int(0, 1) === 0) {
      const tbl = join(dir, object.replace(/^packs\//, 'tables/').replace(/\.pack$/, '.tbl'));
      const tableOffset = Number(b.readBigUInt64LE(b.length - PACK_FOOTER_SIZE + 8));
      if (tableOffset <= b.length - PACK_FOOTER_SIZE) {
        await writeFile(tbl, b.subarray(tableOffset));
        return `${what}, table object too`;
      }
    }
    return what;
  }
  if (kind === 'recipe') {
    if (b.length < RECIPE_HEADER_SIZE + RECIPE_FOOTER_SIZE) return undefined;
    const { what, digest } = resumRecipe(b, rnd);
    await writeFile(path, b);
    // The manifest that names this recipe, resealed with the new digest.
    return (await resealManifestOf(dir, object, digest)) ? `${what}, manifest resealed` : what;
  }
  if (['manifest', 'config', 'policies', 'condemned', 'session'].includes(kind)) {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(b.toString('utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    delete body['checksum'];
    const what = jsonMutate(body, rnd);
    await writeFile(path, sealJson(body));
    return `${what}, resealed`;
  }
  return undefined;
}
