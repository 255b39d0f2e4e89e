/**
 * The HTML report of `chunkyard analyze --html FILE`: one self-contained page (inline CSS,
 * inline SVG drawn by src/analyze/plot.ts, no scripts, nothing fetched) with three plots and
 * the results tables (docs/analyze.md, "The HTML report"). Plot elements have stable ids:
 * svg#plot-ratio, svg#plot-histogram, svg#plot-generations; tables #results, #generations.
 */
import { humanBytes } from '../util/format.js';
import type { AnalyzeReport, AnalyzeResult } from './analyze.js';
import { PALETTE, bytesAxis, escapeXml, log2Axis, niceTicks, renderChart, type Axis, type LineSeries, type StepSeries } from './plot.js';
import { shortSize } from './text.js';

const esc = escapeXml;
const ratio = (r: number): string => `${r.toFixed(2)}×`;
const colorOf = (i: number): string => PALETTE[i % PALETTE.length]!;
const sizeName = (r: AnalyzeResult): string => `avg ${shortSize(r.avgSize)}`;

/** The report page. */
export function renderAnalyzeHtml(report: AnalyzeReport): string {
  const results = report.results;
  const n = report.files.length;
  const best = results.reduce((a, b) => (b.reductionRatio > a.reductionRatio ? b : a), results[0]!);
  const leanest = results.reduce((a, b) => (b.costs.footprintBytes < a.costs.footprintBytes ? b : a), results[0]!);
  const title = `chunkyard analyze: ${n} generation${n === 1 ? '' : 's'}, ${humanBytes(report.logicalBytes)}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>Reduction analysis</h1>
<p class="sub">${esc(`${n} generation${n === 1 ? '' : 's'} · ${humanBytes(report.logicalBytes)} logical · compression ${report.compression}${report.zstdLevel !== undefined ? ` (level ${report.zstdLevel})` : ''} · engine ${report.engine} · ${report.seconds.toFixed(1)} s`)}</p>
<div class="cards">
${card('best reduction', ratio(best.reductionRatio), `at ${sizeName(best)}`)}
${card(`stored at ${sizeName(best)}`, humanBytes(best.compressedBytes), `of ${humanBytes(best.logicalBytes)} logical`)}
${card(`dedupe alone at ${sizeName(best)}`, ratio(best.dedupeRatio), `${humanBytes(best.uniqueBytes)} unique before compression`)}
${card('smallest store, data + metadata', humanBytes(leanest.costs.footprintBytes), `at ${sizeName(leanest)}`)}
${card('sizes compared', String(results.length), results.map((r) => shortSize(r.avgSize)).join(', '))}
</div>
</header>
<section class="grid">
<figure class="panel">${ratioChart(results)}</figure>
<figure class="panel">${histogramChart(results)}</figure>
</section>
<section>
<figure class="panel wide">${generationsChart(report)}</figure>
</section>
<section class="panel">
<h2>Results by average chunk size</h2>
${resultsTable(results)}
<p class="note">min and max chunk sizes derive from the average as for <code>chunkyard init --avg-size</code> (avg/4, avg×4).
<b>unique</b>: raw bytes of the distinct chunks, what a store with these parameters keeps before compression.
<b>compressed</b>: those chunks as the store writes them (${esc(report.compression)}, kept raw when that is not smaller), without pack headers and tables.
dedupe = logical / unique; reduction = logical / compressed.</p>
</section>
<section class="panel">
<h2>What each size costs besides the data</h2>
${costsTable(results)}
<p class="note">Smaller chunks dedupe at least as well, and cost more: every chunk of every backup is a 52-byte recipe entry, every stored chunk a 48-byte pack-table row,
about 73 bytes of index on disk and 10–40 bits of the writer's Bloom filter in RAM (docs/format.md). <b>data + metadata</b> is what a store would hold.
<b>chunk + hash</b>: chunking and BLAKE3 of up to 32 MiB of the first file at that size alone, the first step of every backup (wall clock, disturbed by whatever else the machine runs).</p>
</section>
<section class="panel">
<h2>New bytes per generation</h2>
${generationsTable(report)}
</section>
<footer>chunkyard analyze · files read once for all sizes · ${esc(new Date().toISOString().slice(0, 19).replace('T', ' '))} UTC</footer>
</main>
</body>
</html>
`;
}

function card(label: string, value: string, detail: string): string {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value">${esc(value)}</div><div class="detail">${esc(detail)}</div></div>`;
}

function ratioChart(results: AnalyzeResult[]): string {
  const sizes = results.map((r) => r.avgSize);
  const x = log2Axis('average chunk size', Math.min(...sizes) / 2, Math.max(...sizes) * 2, shortSize);
  const top = Math.max(1, ...results.map((r) => r.reductionRatio));
  const t = niceTicks(0, top * 1.12, 5, (v) => `${v}×`);
  const y: Axis = { label: 'ratio (logical / stored)', scale: 'linear', min: t.min, max: t.max, ticks: t.ticks };
  const reduction: LineSeries = {
    kind: 'line',
    name: 'reduction ratio (dedupe + compression)',
    color: PALETTE[0]!,
    markers: true,
    points: results.map((r) => ({ x: r.avgSize, y: r.reductionRatio, label: ratio(r.reductionRatio), title: `${sizeName(r)}: reduction ${ratio(r.reductionRatio)}` })),
  };
  const dedupe: LineSeries = {
    kind: 'line',
    name: 'dedupe ratio',
    color: PALETTE[1]!,
    dashed: true,
    markers: true,
    points: results.map((r) => ({ x: r.avgSize, y: r.dedupeRatio, label: ratio(r.dedupeRatio), labelBelow: true, title: `${sizeName(r)}: dedupe ${ratio(r.dedupeRatio)}` })),
  };
  return renderChart({ id: 'plot-ratio', title: 'Reduction ratio by average chunk size', width: 560, height: 380, x, y, series: [reduction, dedupe] });
}

function histogramChart(results: AnalyzeResult[]): string {
  // Chunks below minSize can only be the last chunk of a file: left out of the plot.
  const series: StepSeries[] = [];
  let lo = Infinity;
  let hi = 0;
  let top = 0;
  let hidden = 0;
  results.forEach((r, i) => {
    const bins = r.histogram.filter((b) => b.to > r.minSize);
    hidden += r.histogram.filter((b) => b.to <= r.minSize).reduce((s, b) => s + b.chunks, 0);
    const total = r.chunks || 1;
    const shown = bins.map((b) => ({
      from: Math.max(b.from, r.minSize),
      to: b.to,
      y: (100 * b.chunks) / total,
      title: `${sizeName(r)}: ${shortSize(b.from)} – ${shortSize(b.to)}: ${b.chunks} chunks (${((100 * b.chunks) / total).toFixed(1)}%)`,
    }));
    for (const b of shown) {
      lo = Math.min(lo, b.from);
      hi = Math.max(hi, b.to);
      top = Math.max(top, b.y);
    }
    series.push({ kind: 'steps', name: sizeName(r), color: colorOf(i), bins: shown });
  });
  if (!Number.isFinite(lo)) {
    lo = 256;
    hi = 1024;
  }
  const x = log2Axis('chunk size (log scale)', lo, hi, shortSize);
  const t = niceTicks(0, Math.max(top, 1) * 1.08, 5, (v) => `${v}%`);
  const y: Axis = { label: 'share of chunks', scale: 'linear', min: t.min, max: t.max, ticks: t.ticks };
  const chart = renderChart({ id: 'plot-histogram', title: 'Chunk-size distribution', width: 560, height: 380, x, y, series });
  const note = hidden > 0 ? `Not shown: ${hidden} chunk${hidden === 1 ? '' : 's'} shorter than the minimum (only the last chunk of a file can be).` : '';
  return chart + (note ? `<figcaption>${esc(note)}</figcaption>` : '');
}

function generationsChart(report: AnalyzeReport): string {
  const results = report.results;
  const n = report.files.length;
  const cumulative = (values: number[]): number[] => {
    let s = 0;
    return values.map((v) => (s += v));
  };
  const logical = cumulative(results[0]?.generations.map((g) => g.logicalBytes) ?? []);
  const maxUnique = Math.max(1, ...results.map((r) => r.uniqueBytes));
  const showLogical = (logical[n - 1] ?? 0) <= 5 * maxUnique;
  const top = Math.max(maxUnique, showLogical ? (logical[n - 1] ?? 0) : 0);
  const y = bytesAxis('stored bytes (cumulative)', top * 1.05);
  const step = n <= 12 ? 1 : ([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((s) => n / s <= 12) ?? Math.ceil(n / 10));
  const ticks = [];
  for (let g = 1; g <= n; g += step) ticks.push({ value: g, label: String(g) });
  const pad = Math.max(0.25, 0.02 * (n - 1));
  const x: Axis = { label: 'generation (input file, in order)', scale: 'linear', min: 1 - pad, max: n + pad, ticks };
  const markers = n <= 40;
  const series: LineSeries[] = [];
  const legend: { name: string; color: string; dashed?: boolean }[] = [];
  if (showLogical) {
    series.push({
      kind: 'line',
      name: 'logical (no dedupe)',
      color: '#9aa0a6',
      dashed: true,
      points: logical.map((v, g) => ({ x: g + 1, y: v, title: `generation ${g + 1}: ${humanBytes(v)} logical so far` })),
    });
    legend.push({ name: 'logical (no dedupe)', color: '#9aa0a6', dashed: true });
  }
  results.forEach((r, i) => {
    const unique = cumulative(r.generations.map((g) => g.newBytes));
    const stored = cumulative(r.generations.map((g) => g.newCompressedBytes));
    const file = (g: number): string => report.files[g]!.split('/').pop()!;
    series.push({
      kind: 'line',
      name: `${sizeName(r)} unique`,
      color: colorOf(i),
      markers,
      points: unique.map((v, g) => ({ x: g + 1, y: v, title: `${sizeName(r)}, generation ${g + 1} (${file(g)}): ${humanBytes(v)} unique, +${humanBytes(r.generations[g]!.newBytes)} new` })),
    });
    series.push({
      kind: 'line',
      name: `${sizeName(r)} compressed`,
      color: colorOf(i),
      dashed: true,
      markers,
      points: stored.map((v, g) => ({ x: g + 1, y: v, title: `${sizeName(r)}, generation ${g + 1} (${file(g)}): ${humanBytes(v)} compressed` })),
    });
    legend.push({ name: sizeName(r), color: colorOf(i) });
  });
  legend.push({ name: 'solid: unique (raw)', color: '#444' }, { name: 'dashed: compressed', color: '#444', dashed: true });
  const title = `Stored bytes per generation${showLogical ? '' : ` (logical ${humanBytes(logical[n - 1] ?? 0)}, off the scale)`}`;
  return renderChart({ id: 'plot-generations', title, width: 1100, height: 400, x, y, series, legend });
}

function resultsTable(results: AnalyzeResult[]): string {
  const head = ['avg', 'min', 'max', 'chunks', 'unique chunks', 'logical', 'unique', 'dedupe', 'compressed', 'reduction', 'mean', 'median', 'spills'];
  const rows = results.map((r, i) =>
    [
      `<span class="dot" style="background:${colorOf(i)}"></span>${esc(shortSize(r.avgSize))}`,
      esc(shortSize(r.minSize)),
      esc(shortSize(r.maxSize)),
      String(r.chunks),
      String(r.uniqueChunks),
      esc(humanBytes(r.logicalBytes)),
      esc(humanBytes(r.uniqueBytes)),
      esc(ratio(r.dedupeRatio)),
      esc(humanBytes(r.compressedBytes)),
      `<b>${esc(ratio(r.reductionRatio))}</b>`,
      esc(humanBytes(r.chunkSize.mean)),
      esc(humanBytes(r.chunkSize.median)),
      String(r.spills),
    ],
  );
  return htmlTable('results', head, rows);
}

function costsTable(results: AnalyzeResult[]): string {
  const head = ['avg', 'recipes', 'pack tables', 'index', 'metadata', 'data + metadata', 'RAM per stored chunk', 'filter RAM', 'chunk + hash'];
  const rows = results.map((r, i) => [
    `<span class="dot" style="background:${colorOf(i)}"></span>${esc(shortSize(r.avgSize))}`,
    esc(humanBytes(r.costs.recipeBytes)),
    esc(humanBytes(r.costs.packTableBytes)),
    esc(humanBytes(r.costs.indexBytes)),
    esc(humanBytes(r.costs.metadataBytes)),
    `<b>${esc(humanBytes(r.costs.footprintBytes))}</b>`,
    esc(`${r.costs.ramBytesPerStoredChunk.toFixed(1)} B`),
    esc(humanBytes(r.costs.filterBytes)),
    r.costs.chunkingBytesPerSecond === null ? '–' : esc(`${humanBytes(r.costs.chunkingBytesPerSecond)}/s`),
  ]);
  return htmlTable('costs', head, rows);
}

function generationsTable(report: AnalyzeReport): string {
  const head = ['#', 'file', 'size', ...report.results.map((r) => `${esc(sizeName(r))}<br><span class="muted">new (compressed)</span>`)];
  const dirs = report.files.map((f) => f.slice(0, f.lastIndexOf('/') + 1));
  const common = dirs.every((d) => d === dirs[0]) ? dirs[0]! : '';
  const rows = report.files.map((file, g) => [
    String(g + 1),
    `<span class="file" title="${esc(file)}">${esc(file.slice(common.length))}</span>`,
    esc(humanBytes(report.results[0]?.generations[g]?.logicalBytes ?? 0)),
    ...report.results.map((r) => {
      const gen = r.generations[g]!;
      return `${esc(humanBytes(gen.newBytes))} <span class="muted">(${esc(humanBytes(gen.newCompressedBytes))})</span>`;
    }),
  ]);
  return (common ? `<p class="note">Files in <code>${esc(common)}</code></p>` : '') + htmlTable('generations', head, rows, true);
}

/** head cells are text, or markup when headMarkup is set; row cells are markup. */
function htmlTable(id: string, head: string[], rows: string[][], headMarkup = false): string {
  return `<div class="table-wrap"><table id="${id}"><thead><tr>${head.map((h) => `<th>${headMarkup ? h : esc(h)}</th>`).join('')}</tr></thead><tbody>
${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n')}
</tbody></table></div>`;
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f7; color: #1a1a2e; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 20px 40px; }
header h1 { margin: 0 0 2px; font-size: 26px; letter-spacing: -0.01em; }
.sub { margin: 0 0 16px; color: #5b6070; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-bottom: 16px; }
.card { background: #fff; border-radius: 10px; padding: 12px 16px; box-shadow: 0 1px 3px rgba(20,20,40,.08); }
.card .label { color: #6b7080; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.card .value { font-size: 24px; font-weight: 650; margin: 2px 0; color: #0b3d6b; }
.card .detail { color: #6b7080; font-size: 12px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin-bottom: 16px; }
.panel { background: #fff; border-radius: 10px; padding: 12px; margin: 0 0 16px; box-shadow: 0 1px 3px rgba(20,20,40,.08); }
.grid .panel { margin: 0; }
figure.panel svg { display: block; width: 100%; height: auto; }
h2 { font-size: 16px; margin: 4px 6px 10px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; text-align: right; white-space: nowrap; border-bottom: 1px solid #eceef2; }
th { font-size: 12px; color: #5b6070; font-weight: 600; background: #f8f9fb; }
th:first-child, td:first-child { text-align: left; }
#generations td:nth-child(2), #generations th:nth-child(2) { text-align: left; }
.file { display: inline-block; max-width: 380px; overflow: hidden; text-overflow: ellipsis; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fafbfc; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 7px; }
.muted { color: #8a8f9c; }
.note { color: #5b6070; font-size: 12.5px; margin: 10px 6px 2px; }
figcaption { color: #6b7080; font-size: 12px; margin: 2px 8px 0; }
code { background: #f0f1f4; padding: 0 4px; border-radius: 4px; }
footer { color: #8a8f9c; font-size: 12px; text-align: center; margin-top: 8px; }
@media (max-width: 800px) { .grid, .cards { grid-template-columns: 1fr 1fr; } .grid { grid-template-columns: 1fr; } }
`;
