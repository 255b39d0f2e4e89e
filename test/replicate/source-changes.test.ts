/**
 * A replication while the source changes under it (found by the soak, test/support/soak.ts).
 * replicate read every selected manifest at its start and copied the snapshots one after the
 * other; it holds no session at the source, so by the time a later snapshot was copied a
 * `forget` + `prune` there, or a `tier` (new recipe naming archive packs) + `prune`, had
 * deleted the recipe its old manifest named, and the run failed with CORRUPT ("recipe … is
 * missing") — a code that says the store is damaged, for a store that is whole. Each
 * manifest is now read again right before its snapshot is copied: a forgotten snapshot is
 * skipped, a rewritten one is copied from its new recipe (archive packs from the archive).
 *
 * The interleaving is exact: the destination's backend is wrapped so that the source changes
 * (real CLI processes) right when replicate asks the destination whether it holds the
 * second snapshot, after it read the manifests and copied the first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backend/types.js';
import { openBackend } from '../../src/backend/location.js';
import { replicate } from '../../src/replicate/replicate.js';
import { Store } from '../../src/store/store.js';
import { collect, prng } from '../support/data.js';
import { storeWithSnapshots } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
}

/** `backend`, except that the first stat of `name` runs `before` first. */
function hookedStat(backend: Backend, name: string, before: () => void): Backend {
  let done = false;
  return new Proxy(backend, {
    get(target, prop, receiver) {
      if (prop === 'stat') {
        return async (n: string) => {
          if (n === name && !done) {
            done = true;
            before();
          }
          return target.stat(n);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const cases: { name: string; change: (src: string, work: string, second: string) => void; second: 'skipped' | 'copied' }[] = [
  { name: 'the second snapshot forgotten and pruned at the source', change: (src, _w, second) => (cli(['forget', src, second]), cli(['prune', src])), second: 'skipped' },
  { name: 'the source tiered (new recipes naming archive packs) and pruned', change: (src, work) => (cli(['tier', src, '--archive', join(work, 'archive'), '--older-than', '0', '--archive-pack-size', '1M']), cli(['prune', src])), second: 'copied' },
];

for (const c of cases) {
  test(`replicate while the source changes: ${c.name}`, { timeout: 120_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), 'replicate-changes-'));
    try {
      const src = join(work, 'src');
      const dst = join(work, 'dst');
      await Store.init(dst, { avgSize: 16384, packSize: 1 << 20 });
      const data = [prng(811, 900 << 10), prng(812, 800 << 10)];
      const ids = await storeWithSnapshots(src, data);
      const raw = await openBackend(dst);
      const d = await Store.open(hookedStat(raw, `snapshots/${ids[1]}.json`, () => c.change(src, work, ids[1]!)), { threads: 1 });
      let report;
      try {
        report = await replicate(src, [d]);
      } finally {
        await d.close();
      }
      const want = c.second === 'copied' ? [...ids] : [ids[0]!];
      assert.deepEqual(report.destinations[0]!.replicated, want);
      const out = await Store.open(dst, { threads: 1 });
      try {
        assert.deepEqual((await out.snapshots()).map((x) => x.id), want);
        for (const [i, id] of want.entries()) assert.ok((await collect(await out.restore(id))).equals(data[i]!), `${id} restores byte-exact at the destination`);
      } finally {
        await out.close();
      }
      assert.deepEqual((await Store.check(dst, { readData: true })).errors, []);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}
