/**
 * Is a snapshot's recipe the one its manifest sealed? The manifest records the recipe's size
 * and BLAKE3 (docs/format.md, "Manifests"); a recipe with a flipped byte, or one copied over
 * by another snapshot's, fails this even when each of its entries still names a real chunk.
 * check reports such a snapshot; repair and prune never rewrite such a recipe (rewriting
 * would seal the damage under a fresh checksum).
 */
import type { Backend } from '../backend/types.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { createIncrementalBlake3 } from '../util/blake3.js';

/** Null when the recipe object has the size and BLAKE3 its manifest records, else why not. */
export async function recipeMismatch(backend: Backend, m: SnapshotManifest): Promise<string | null> {
  const recipe = m.recipe!;
  const name = recipe.name;
  const size = await backend.stat(name);
  if (size === undefined) return `snapshot ${m.id}: its recipe ${name} is missing`;
  if (size !== recipe.bytes) return `snapshot ${m.id}: recipe ${name} has ${size} bytes, the manifest says ${recipe.bytes}`;
  const hasher = await createIncrementalBlake3();
  for await (const piece of backend.getStream(name)) hasher.update(piece as Buffer);
  const digest = hasher.digest('hex');
  if (digest !== recipe.blake3) return `snapshot ${m.id}: recipe ${name} fails its checksum (manifest ${recipe.blake3.slice(0, 16)}…, file ${digest.slice(0, 16)}…)`;
  return null;
}
