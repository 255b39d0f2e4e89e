// What bench/policies.mjs and bench/prune.mjs share: their command line (--gens FILE...,
// --workdir, --bin, --out, --keep), timed runs of real processes, and folder sizes.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Parses the common options. Exits 2 with `usage` when fewer than `minGens` generations are
 * given. `out` defaults to a file in the current directory, not in the work directory, which
 * the scripts delete.
 */
export function benchArgs({ usage, minGens, workdir, out }) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i < 0 ? dflt : args[i + 1];
  };
  const gens = [];
  const i = args.indexOf('--gens');
  if (i >= 0) for (let j = i + 1; j < args.length && !args[j].startsWith('--'); j++) gens.push(resolve(args[j]));
  if (gens.length < minGens) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return {
    gens,
    bin: resolve(opt('--bin', fileURLToPath(new URL('../bin/chunkyard', import.meta.url)))),
    work: resolve(opt('--workdir', workdir)),
    out: resolve(opt('--out', out)),
    keep: args.includes('--keep'),
  };
}

/** Runs a command to completion, timed; exits the script with its stderr if it fails. */
export function timed(label, cmd, argv, { stdout = 'pipe' } = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', stdout, 'pipe'], maxBuffer: 256 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) {
    console.error(`${label}: exit ${r.status}\n${r.stderr}`);
    process.exit(1);
  }
  return { seconds, stdout: stdout === 'pipe' ? r.stdout.toString() : '' };
}

/** Bytes under a folder (du -sb). */
export function dirBytes(dir) {
  return Number(spawnSync('du', ['-sb', dir]).stdout.toString().split('\t')[0]);
}
