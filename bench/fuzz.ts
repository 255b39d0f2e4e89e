/**
 * Long mutation-fuzzing run over every on-disk object (test/support/fuzz.ts): builds one store
 * per variant, then runs CASES seeded cases (seed SEED, SEED+1, …), round-robin over the
 * variants, each mutating one object and using the store through the library and bin/chunkyard.
 * Prints one line per case that broke a property (with its seed, to replay) and a summary.
 *
 *   npm run build:ts && flock /tmp/chunkyard-bench.lock node dist/bench/fuzz.js [cases=1000] [seed=1] [cli=1|0] [variants=lz4,zstd,none,encrypted,delta]
 *
 * Env: FUZZ_KIND=<kind> and FUZZ_MUTATION=<mutation> restrict the draw; FUZZ_VERBOSE=1 prints
 * every case; FUZZ_TRACE=1 names each case on stderr before it runs (to replay one that aborts); FUZZ_BUDGET_S (default 280) stops the run after that many seconds.
 * Replay one case: node dist/bench/fuzz.js 1 <seed> 1 <variant>. Keep runs on a shared
 * machine under ~5 minutes (about 1-3 s a case with cli=1, several times fewer without).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBase, describe, listFiles, VARIANTS, type BaseStore, type Kind, type MutationName, type VariantName } from '../test/support/fuzz.js';
import { runCase } from '../test/support/fuzz.js';

const cases = Number(process.argv[2] ?? 1000);
const seed0 = Number(process.argv[3] ?? 1);
const withCli = (process.argv[4] ?? '1') !== '0';
const variants = (process.argv[5]?.split(',') ?? [...VARIANTS]) as VariantName[];
// FUZZ_KIND=pack, FUZZ_MUTATION=resum: only that kind of object, only that mutation.
const only: { kind?: Kind; mutation?: MutationName } = {};
if (process.env['FUZZ_KIND']) only.kind = process.env['FUZZ_KIND'] as Kind;
if (process.env['FUZZ_MUTATION']) only.mutation = process.env['FUZZ_MUTATION'] as MutationName;
const budgetMs = Number(process.env['FUZZ_BUDGET_S'] ?? 280) * 1000;

process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
const root = await mkdtemp('/tmp/fuzz-bench-');
const started = Date.now();
try {
  const bases: BaseStore[] = [];
  for (const v of variants) bases.push(await buildBase(v, root));
  const foreign = (await Promise.all(bases.map(async (b) => (await listFiles(b.dir)).map((f) => join(b.dir, f))))).flat();
  const tally = new Map<string, number>();
  let ran = 0;
  let bad = 0;
  for (let i = 0; i < cases; i++) {
    if (Date.now() - started > budgetMs) {
      console.log(`time budget reached after ${ran} cases`);
      break;
    }
    const base = bases[i % bases.length]!;
    if (process.env['FUZZ_TRACE']) process.stderr.write(`> seed ${seed0 + i} ${base.variant}\n`);
    const r = await runCase(base, seed0 + i, { cli: withCli, foreign, ...only });
    ran++;
    const key = r.mutation ? `${r.mutation.kind}/${r.mutation.mutation}` : 'none';
    tally.set(key, (tally.get(key) ?? 0) + 1);
    if (r.violations.length > 0) {
      bad++;
      console.log(`FAIL ${describe(r)}`);
      for (const v of r.violations) console.log(`  - ${v}`);
    } else if (process.env['FUZZ_VERBOSE']) console.log(`ok   ${describe(r)}: ${r.outcomes.map((o) => `${o.op}=${o.result}`).join(', ')}`);
  }
  console.log(`${ran} cases (seeds ${seed0}..${seed0 + ran - 1}, cli ${withCli ? 'on' : 'off'}), ${bad} broke a property, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log([...tally].sort().map(([k, n]) => `${k}:${n}`).join(' '));
} finally {
  await rm(root, { recursive: true, force: true });
}
