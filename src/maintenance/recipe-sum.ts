/**
 * Is a snapshot's recipe the one its manifest sealed? The manifest records the recipe's size
 * and BLAKE3 (docs/format.md, "Recipes": over the whole file for version 1, over header,
 * tables and footer — which hold each block's BLAKE3 — for version 2); a recipe with a flipped
 * byte, or one copied over by another snapshot's, fails this even when each of its entries
 * still names a real chunk. check reports such a snapshot; repair and prune never rewrite
 * such a recipe (rewriting would seal the damage under a fresh checksum).
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { recipeChecksumProblem } from '../snapshot/recipe.js';

/** Null when the recipe object has the size and checksum its manifest records, else why not. */
export async function recipeMismatch(backend: Backend, m: SnapshotManifest): Promise<string | null> {
  const recipe = m.recipe!;
  const name = recipe.name;
  const size = await backend.stat(name);
  if (size === undefined) return `snapshot ${m.id}: its recipe ${name} is missing`;
  if (size !== recipe.bytes) return `snapshot ${m.id}: recipe ${name} has ${size} bytes, the manifest says ${recipe.bytes}`;
  try {
    const problem = await recipeChecksumProblem(backend, recipe);
    return problem === undefined ? null : `snapshot ${m.id}: ${problem}`;
  } catch (err) {
    // A version this build does not know, under a manifest it does: the version field of the
    // recipe was damaged (no build writes a recipe its own manifest cannot name).
    if (err instanceof ChunkyardError && err.code === 'FORMAT_UNSUPPORTED') return `snapshot ${m.id}: recipe ${name} fails its checksum (${err.message})`;
    throw err;
  }
}
