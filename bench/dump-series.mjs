#!/usr/bin/env node
// Nightly "database dumps" with scattered small edits, built from text no one here wrote.
//
//   node bench/dump-series.mjs --out DIR [--generations 30] [--size-mib 256] [--seed 1] [--gap-kib 256]
//
// Generation 1 is a SQL dump (INSERT statements, one row per line) of two tables built from
// what Debian installed on this machine: `packages` from /var/lib/dpkg/status and
// `doc_lines` from the text of /usr/share/doc, /usr/share/man (gunzipped),
// /usr/share/common-licenses, /usr/share/perl5 and /usr/lib/python3 (files read in sorted
// order, binary files skipped), cut at --size-mib. Each later generation is the previous
// one with edits every --gap-kib on average (exponential gaps, from a seeded PRNG): 80%
// update a row in place (a counter and a timestamp column change, sometimes a word of the
// text), 10% insert a row after it, 10% delete it. So a generation shares almost all its
// bytes with the one before, and its changes are scattered, as a nightly dump's are.
//
// Reproducible: the same machine image, seed and options give the same bytes (the corpus
// fingerprint printed and recorded says which files went in). Used as a module by
// bench/history.mjs (`dumpSeries`), or run alone to write DIR/gen-NN.sql.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOTS = ['/usr/share/doc', '/usr/share/man', '/usr/share/common-licenses', '/usr/share/perl5', '/usr/lib/python3', '/usr/lib/python3.11'];

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sql = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

function* files(dir) {
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) yield* files(p);
    else if (st.isFile()) yield p;
  }
}

/** The rows of generation 1 (strings without the newline) and a fingerprint of what went in. */
export function baseRows(sizeBytes) {
  const rows = [];
  const corpus = createHash('sha256');
  let bytes = 0;
  const push = (row) => {
    rows.push(row);
    bytes += row.length + 1;
  };
  push('-- chunkyard bench: a dump of what this machine has installed');
  push('CREATE TABLE packages (id INTEGER PRIMARY KEY, name TEXT, version TEXT, arch TEXT, size_kib INTEGER, maintainer TEXT, summary TEXT, counter INTEGER, updated_at TEXT);');
  const status = readFileSync('/var/lib/dpkg/status', 'utf8');
  corpus.update(status);
  let id = 1;
  for (const para of status.split('\n\n')) {
    const f = {};
    for (const line of para.split('\n')) {
      const m = /^([A-Za-z-]+): (.*)$/.exec(line);
      if (m) f[m[1]] = m[2];
    }
    if (!f.Package) continue;
    push(`INSERT INTO packages VALUES (${id++}, ${sql(f.Package)}, ${sql(f.Version ?? '')}, ${sql(f.Architecture ?? '')}, ${Number(f['Installed-Size'] ?? 0)}, ${sql(f.Maintainer ?? '')}, ${sql(f.Description ?? '')}, 0, '2026-01-01 00:00:00');`);
  }
  push('CREATE TABLE doc_lines (id INTEGER PRIMARY KEY, source TEXT, line_no INTEGER, counter INTEGER, updated_at TEXT, text TEXT);');
  id = 1;
  outer: for (const root of ROOTS) {
    for (const file of files(root)) {
      let data;
      try {
        data = readFileSync(file);
        if (file.endsWith('.gz')) data = gunzipSync(data);
      } catch {
        continue;
      }
      if (data.includes(0)) continue; // binary
      corpus.update(file);
      corpus.update(data);
      const lines = data.toString('utf8').split('\n');
      for (let i = 0; i < lines.length; i++) {
        const text = lines[i].trimEnd();
        if (text.length === 0) continue;
        push(`INSERT INTO doc_lines VALUES (${id++}, ${sql(file)}, ${i + 1}, 0, '2026-01-01 00:00:00', ${sql(text)});`);
        if (bytes >= sizeBytes) break outer;
      }
    }
  }
  return { rows, bytes, corpus: corpus.digest('hex').slice(0, 16) };
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

/** Edits `rows` in place for generation `gen` (2, 3, …): one edit every `gapBytes` on average. */
export function editRows(rows, gen, gapBytes, random) {
  const stamp = `2026-01-${String(Math.min(28, gen)).padStart(2, '0')} 0${gen % 10}:00:00`;
  const nextGap = () => Math.max(1, Math.round(-Math.log(1 - random()) * gapBytes));
  const out = [];
  let pos = 0;
  let nextEdit = nextGap();
  let edits = 0;
  let nextId = 10_000_000 * gen;
  for (const row of rows) {
    pos += row.length + 1;
    if (pos < nextEdit || !row.startsWith('INSERT')) {
      out.push(row);
      continue;
    }
    nextEdit = pos + nextGap();
    edits++;
    const kind = random();
    if (kind < 0.8) {
      // UPDATE: bump the counter, set the timestamp, sometimes change a word of the text.
      let edited = row.replace(/, (\d+), '2026-[^']*'/, (_m, n) => `, ${Number(n) + 1 + Math.floor(random() * 1000)}, '${stamp}'`);
      if (random() < 0.3) edited = edited.replace(/ [a-z]{4,} /, ` ${WORDS[Math.floor(random() * WORDS.length)]} `);
      out.push(edited);
    } else if (kind < 0.9) {
      out.push(row);
      out.push(row.replace(/VALUES \(\d+,/, `VALUES (${nextId++},`));
    }
    // else: DELETE (the row is left out)
  }
  return { rows: out, edits };
}

/** Generations 1..n as Buffers, one at a time (only the current one is kept). */
export function* dumpSeries({ generations = 30, sizeMiB = 256, seed = 1, gapKiB = 256 } = {}) {
  const base = baseRows(sizeMiB * 2 ** 20);
  let rows = base.rows;
  const random = prng(seed);
  for (let g = 1; g <= generations; g++) {
    let edits = 0;
    if (g > 1) ({ rows, edits } = editRows(rows, g, gapKiB * 1024, random));
    const data = Buffer.from(rows.join('\n') + '\n', 'utf8');
    yield { generation: g, data, edits, corpus: base.corpus };
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const out = opt('out');
  if (!out) {
    console.error('usage: node bench/dump-series.mjs --out DIR [--generations 30] [--size-mib 256] [--seed 1] [--gap-kib 256]');
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  for (const g of dumpSeries({ generations: Number(opt('generations', 30)), sizeMiB: Number(opt('size-mib', 256)), seed: Number(opt('seed', 1)), gapKiB: Number(opt('gap-kib', 256)) })) {
    const name = join(out, `gen-${String(g.generation).padStart(2, '0')}.sql`);
    writeFileSync(name, g.data);
    console.log(`${name}: ${g.data.length} bytes, ${g.edits} edits, sha256 ${createHash('sha256').update(g.data).digest('hex').slice(0, 16)}, corpus ${g.corpus}`);
  }
}
