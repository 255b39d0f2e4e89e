/**
 * Mutation fuzzing of every on-disk object, bounded and with fixed seeds, so that CI keeps the
 * properties (test/support/fuzz.ts has the driver, bench/fuzz.ts runs thousands of cases):
 *   - no command crashes, hangs or fails with anything but a ChunkyardError / a CLI exit with
 *     a documented stable code;
 *   - a restore gives exactly the original bytes or fails with a code;
 *   - check --read-data reports damage whenever a restore of a snapshot failed on it (except
 *     for a deleted manifest: that is what `forget` does, see `forgotten` in the driver);
 *   - a failed read-only command changes no stored file;
 *   - after backup + prune, every snapshot that restored before still restores.
 * The cases walk every object kind and every mutation (a case draws the object of its kind,
 * the position and the value from its seed); a failure prints the seed, object and mutation
 * to replay with `node dist/bench/fuzz.js 1 <seed> <cli> <variant>` plus FUZZ_KIND/FUZZ_MUTATION.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBase, describe, KINDS, listFiles, MUTATIONS, runCase, VARIANTS, type BaseStore, type Kind, type VariantName } from '../support/fuzz.js';

/** Kinds that only some variants have. */
const ONLY_IN: Partial<Record<Kind, VariantName>> = { keys: 'encrypted', sketch: 'delta' };

test('mutation fuzzing: every object kind, every mutation, through the library and bin/chunkyard', { timeout: 600_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'fuzz-objects-'));
  try {
    const bases = new Map<VariantName, BaseStore>();
    for (const v of VARIANTS) bases.set(v, await buildBase(v, root));
    const foreign = (await Promise.all([...bases.values()].map(async (b) => (await listFiles(b.dir)).map((f) => join(b.dir, f))))).flat();
    // Each kind twice, once with the CLI half; mutations cycle, so every one is met too.
    const cases = KINDS.length * 2;
    const seen = { kinds: new Set<string>(), mutations: new Set<string>() };
    for (let i = 0; i < cases; i++) {
      const kind = KINDS[i % KINDS.length]!;
      const mutation = MUTATIONS[i % MUTATIONS.length]!;
      const variant = ONLY_IN[kind] ?? VARIANTS[i % VARIANTS.length]!;
      const seed = 7000 + i;
      const r = await runCase(bases.get(variant)!, seed, { kind, mutation, foreign, cli: i < KINDS.length });
      await t.test(describe(r), () => {
        assert.ok(r.mutation, `seed ${seed}: no ${kind} object in the ${variant} store`);
        assert.deepEqual(r.violations, [], `${describe(r)}\n${r.outcomes.map((o) => `${o.op}=${o.result}`).join(', ')}`);
      });
      seen.kinds.add(r.mutation!.kind);
      seen.mutations.add(r.mutation!.mutation);
    }
    assert.deepEqual([...seen.kinds].sort(), [...KINDS].sort(), 'every object kind was mutated');
    // A mutation that cannot apply (resum on an encrypted object, flip of an empty file) falls back to another; all still occur.
    assert.deepEqual([...seen.mutations].sort(), [...MUTATIONS].sort(), 'every mutation was applied');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
