// Medians over the A/B rounds of run.sh: per dataset and build, chunkyard and chunkyard@enc
// ingest (MB/s, CPU s) and latest-generation restore (s, CPU s), and the ratios enc vs plain
// (plain time / enc time: 1 = no cost). node bench/results/2026-12-07b-encopen/summarize.mjs
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
const dir = dirname(fileURLToPath(import.meta.url));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const rows = {};
for (const f of readdirSync(dir).filter((n) => /^peers-.*\.json$/.test(n))) {
  const [, ds, build] = f.match(/^peers-(\w+)-(\w)-r\d+\.json$/);
  const res = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  for (const t of res.rounds[0]) {
    const k = `${ds} ${build}`;
    rows[k] ??= {};
    const last = t.restores[t.restores.length - 1];
    (rows[k][t.tool] ??= []).push({ ingestS: t.ingest.seconds, mbps: t.ingest.mbps, ingestCpu: t.ingest.cpuSeconds, restoreS: last.seconds, restoreCpu: last.cpu, ok: last.verified });
  }
}
console.log('| dataset | build | rounds | ingest MB/s plain / enc | enc vs plain ingest | ingest CPU s plain / enc | latest restore s plain / enc | enc vs plain restore | restore CPU s plain / enc | byte-exact |');
console.log('|---|---|---:|---|---:|---|---|---:|---|---|');
for (const k of Object.keys(rows).sort()) {
  const [ds, b] = k.split(' ');
  const p = rows[k]['chunkyard'], e = rows[k]['chunkyard@enc'];
  const m = (a, f) => median(a.map(f));
  const ok = [...p, ...e].every((x) => x.ok);
  console.log(`| ${ds} | ${b === 'A' ? 'main' : 'branch'} | ${p.length} | ${m(p, (x) => x.mbps).toFixed(1)} / ${m(e, (x) => x.mbps).toFixed(1)} | ${(m(p, (x) => x.ingestS) / m(e, (x) => x.ingestS)).toFixed(2)}× | ${m(p, (x) => x.ingestCpu).toFixed(2)} / ${m(e, (x) => x.ingestCpu).toFixed(2)} | ${m(p, (x) => x.restoreS).toFixed(3)} / ${m(e, (x) => x.restoreS).toFixed(3)} | ${(m(p, (x) => x.restoreS) / m(e, (x) => x.restoreS)).toFixed(2)}× | ${m(p, (x) => x.restoreCpu).toFixed(3)} / ${m(e, (x) => x.restoreCpu).toFixed(3)} | ${ok ? 'yes' : 'NO'} |`);
}
