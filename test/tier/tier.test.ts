/**
 * The archive tier on directory stores (issue 19): bad input gets stable codes and changes
 * nothing; a dry run changes nothing and never touches the archive; a vanished archive is
 * ARCHIVE_UNAVAILABLE, never silently re-created; a backup running during a move stays
 * restorable without the archive; the minimum retention age keeps archive packs from prune;
 * `restore --plan` on the command line (text and JSON).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkyardError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { collect, prng, streamOf } from '../support/data.js';
import { storeWithSnapshots } from '../support/store-files.js';

const BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Every file under dir (except the local cache and temporary folders) with its hash. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (rel === 'cache' || rel === 'tmp~') continue;
      if (e.isDirectory()) await walk(p);
      else out.set(rel, createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  };
  await walk(dir);
  return out;
}

async function fixture(work: string): Promise<{ dir: string; data: Buffer[]; ids: string[] }> {
  const dir = join(work, 'store');
  const data = [prng(71, 1500 << 10), prng(72, 1200 << 10)];
  return { dir, data, ids: await storeWithSnapshots(dir, data) };
}

test('bad input: stable codes, nothing changed', async () => {
  const work = await mkdtemp(join(tmpdir(), 'tier-bad-'));
  try {
    const { dir } = await fixture(work);
    const before = await tree(dir);
    const expect = (args: string[], code: string, status: number) => {
      const r = cli(['tier', dir, ...args, '--json']);
      assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
      assert.equal((JSON.parse(r.stderr.trim().split('\n').pop()!) as { error: { code: string } }).error.code, code, args.join(' '));
    };
    expect(['--older-than', '30d'], 'BAD_ARGUMENT', 2); // no archive yet
    expect(['--archive', join(work, 'a')], 'BAD_ARGUMENT', 2); // no age
    for (const age of ['30', '30x', '-1d', '1m', '']) expect(['--archive', join(work, 'a'), '--older-than', age], 'BAD_ARGUMENT', 2);
    expect(['--archive', 'ftp://host/x', '--older-than', '1d'], 'BAD_ARGUMENT', 2);
    expect(['--archive', join(work, 'a'), '--older-than', '1d', '--min-retention', 'soon'], 'BAD_ARGUMENT', 2);
    expect(['--archive', join(work, 'a'), '--older-than', '1d', '--archive-pack-size', '1K'], 'BAD_ARGUMENT', 2);
    // A directory that holds something else is not taken as an archive.
    await mkdir(join(work, 'busy'));
    await writeFile(join(work, 'busy', 'thesis.tex'), 'do not delete');
    expect(['--archive', join(work, 'busy'), '--older-than', '0'], 'ARCHIVE_MISMATCH', 1);
    assert.deepEqual(await tree(dir), before, 'the store is unchanged');
    assert.deepEqual(await readdir(join(work, 'busy')), ['thesis.tex']);
    // A dry run changes nothing and does not create the archive.
    const dry = cli(['tier', dir, '--archive', join(work, 'arch'), '--older-than', '0', '--dry-run', '--json']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.ok((JSON.parse(dry.stdout) as { chunks: { moved: number } }).chunks.moved > 0);
    assert.deepEqual(await tree(dir), before);
    assert.equal(await readdir(join(work, 'arch')).catch(() => 'absent'), 'absent');

    // The first real run records the archive; another location is then refused.
    const ok = cli(['tier', dir, '--archive', join(work, 'arch'), '--older-than', '0', '--archive-pack-size', '1M']);
    assert.equal(ok.status, 0, ok.stderr);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { features: string[] };
    assert.deepEqual(config.features, ['archive-tier']);
    const after = await tree(dir);
    expect(['--archive', join(work, 'elsewhere'), '--older-than', '0'], 'BAD_ARGUMENT', 2);
    // Another store's archive is refused.
    const other = join(work, 'other');
    await Store.init(other, {});
    const o = cli(['tier', other, '--archive', join(work, 'arch'), '--older-than', '0', '--json']);
    assert.equal(o.status, 1);
    assert.match(o.stderr, /ARCHIVE_MISMATCH/);
    // A vanished archive: ARCHIVE_UNAVAILABLE, not re-created empty.
    await rm(join(work, 'arch'), { recursive: true });
    expect(['--older-than', '0'], 'ARCHIVE_UNAVAILABLE', 1);
    assert.equal(await readdir(join(work, 'arch')).catch(() => 'absent'), 'absent');
    assert.deepEqual(await tree(dir), after);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a backup during a move, retention of archive packs, restore --plan on the command line', async () => {
  const work = await mkdtemp(join(tmpdir(), 'tier-run-'));
  try {
    const { dir, data, ids } = await fixture(work);
    const archive = join(work, 'arch');
    const s = await Store.open(dir, { threads: 1 });
    let during: string | undefined;
    try {
      // A writer backs up the old data again while the move copies it: it dedupes against the
      // hot copies, and its snapshot must restore without the archive after tier and prune.
      const r = await s.tier({
        archive,
        olderThan: '0',
        minRetention: '1y',
        archivePackSize: 1 << 20,
        onStep: async (step) => {
          if (step !== 'copied' || during) return;
          const w = await Store.open(dir, { threads: 1, cacheDir: join(work, 'cache2') });
          try {
            during = (await w.backup(streamOf(data[0]!, 3), { target: 'during' })).id;
          } finally {
            await w.close();
          }
        },
      });
      assert.equal(r.snapshots.rewritten, 2);
      assert.ok(during);
      await s.prune();
      const plan = await s.restorePlan(during!);
      assert.equal(plan.archive.packs.length, 0, 'the snapshot made during the move needs no archive pack');
    } finally {
      await s.close();
    }
    await rm(archive + '-moved', { recursive: true, force: true });
    const { rename } = await import('node:fs/promises');
    await rename(archive, archive + '-moved'); // the archive unreachable
    const h = await Store.open(dir, { threads: 1 });
    try {
      assert.ok((await collect(await h.restore(during!))).equals(data[0]!));
      await assert.rejects(async () => collect(await h.restore(ids[1]!)), (e: unknown) => e instanceof ChunkyardError && e.code === 'ARCHIVE_UNAVAILABLE');
    } finally {
      await h.close();
    }
    await rename(archive + '-moved', archive);

    // restore --plan, text and JSON.
    const j = cli(['restore', dir, ids[1]!, '--plan', '--json']);
    assert.equal(j.status, 0, j.stderr);
    const plan = JSON.parse(j.stdout) as { archive: { packs: { name: string; start: number; end: number }[]; bytes: number; requests: number } };
    assert.ok(plan.archive.requests > 0);
    const text = cli(['restore', dir, ids[1]!, '--plan']);
    assert.equal(text.status, 0, text.stderr);
    for (const p of plan.archive.packs) assert.ok(text.stdout.includes(`${p.name} bytes ${p.start}..${p.end}`), text.stdout);
    assert.match(text.stdout, new RegExp(`${plan.archive.requests} request\\(s\\), .* \\(${plan.archive.bytes} bytes\\)`));

    // repair takes archive packs for what they are: nothing damaged, nothing re-pointed.
    const rep = await Store.repair(dir, { threads: 1 });
    assert.deepEqual(rep.damagedSnapshots, []);
    assert.deepEqual(JSON.parse(cli(['restore', dir, ids[1]!, '--plan', '--json']).stdout), plan);

    // Prune never repacks archive packs: with one of the two old snapshots forgotten, some
    // archive packs are partly unused, and they stay exactly as they are.
    const coldTree = async () => [...(await tree(dir)).keys()].filter((k) => k.startsWith('tier/tables/')).sort();
    const coldAtFirst = await coldTree();
    assert.ok(coldAtFirst.length >= 2, `${coldAtFirst.length} archive packs`);
    assert.equal(cli(['forget', dir, ids[0]!]).status, 0);
    assert.equal(cli(['prune', dir]).status, 0);
    assert.deepEqual(await coldTree(), coldAtFirst, 'no archive pack rewritten or deleted');
    assert.deepEqual(JSON.parse(cli(['restore', dir, ids[1]!, '--plan', '--json']).stdout), plan, 'the remaining snapshot still reads the same archive ranges');

    // Minimum retention: forgotten, unreferenced archive packs stay while younger than 1y.
    const f = cli(['forget', dir, ids[1]!]);
    assert.equal(f.status, 0, f.stderr);
    const coldBefore = await readdir(join(dir, 'tier', 'tables'));
    assert.equal(cli(['prune', dir]).status, 0);
    assert.deepEqual(await readdir(join(dir, 'tier', 'tables')), coldBefore, 'kept: younger than the minimum retention');
    // Lowered to 0 (remembered), the next prune deletes them in both tiers.
    const t = cli(['tier', dir, '--older-than', '1y', '--min-retention', '0']);
    assert.equal(t.status, 0, t.stderr);
    assert.equal(cli(['prune', dir]).status, 0);
    const left = [];
    for (const d of await readdir(join(dir, 'tier', 'tables'))) left.push(...(await readdir(join(dir, 'tier', 'tables', d))));
    assert.deepEqual(left, []);
    const archived = [];
    for (const d of await readdir(join(archive, 'packs'))) archived.push(...(await readdir(join(archive, 'packs', d))));
    assert.deepEqual(archived, []);
    const c = await Store.check(dir, { readData: true, threads: 1 });
    assert.equal(c.errors.length, 0, c.errors.map((e) => e.message).join('\n'));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a restore writes output while an archive pack is still arriving', { timeout: 120_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'tier-flow-'));
  try {
    const dir = join(work, 'store');
    await Store.init(dir, { compression: 'none' });
    const data = prng(9, 40 << 20);
    const s = await Store.open(dir, { threads: 1 });
    const id = (await s.backup(streamOf(data, 1), { target: 'big' })).id;
    await s.tier({ archive: join(work, 'arch'), olderThan: '0', archivePackSize: 64 << 20 });
    await s.close();
    // The archive sends the first 20 MiB of the pack, then holds the rest back until the
    // restore has produced output: a restore that waited for whole packs would never finish.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let sent = 0;
    const { openBackend } = await import('../../src/backend/location.js');
    const { Readable } = await import('node:stream');
    const opener = async (l: string, o: object) => {
      const b = await openBackend(l, o);
      return new Proxy(b, {
        get(target, p) {
          if (p === 'getStream') {
            return (name: string, range?: { start: number; end: number }) =>
              Readable.from(
                (async function* () {
                  let n = 0;
                  for await (const c of target.getStream(name, range)) {
                    if (n >= 20 << 20 && name.startsWith('packs/')) await gate;
                    n += (c as Buffer).length;
                    if (name.startsWith('packs/')) sent = n;
                    yield c;
                  }
                })(),
              );
          }
          const v = (target as unknown as Record<string | symbol, unknown>)[p];
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    };
    const r = await Store.open(dir, { readOnly: true, threads: 1, archiveOpener: opener });
    try {
      const plan = await r.restorePlan(id);
      assert.equal(plan.archive.requests, 1, 'one archive pack');
      const parts: Buffer[] = [];
      for await (const c of await r.restore(id)) {
        if (parts.length === 0) {
          assert.ok(sent < data.length - (8 << 20), `the first output came after ${sent} of the pack's bytes`);
          release();
        }
        parts.push(c as Buffer);
      }
      assert.ok(Buffer.concat(parts).equals(data));
    } finally {
      release();
      await r.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
