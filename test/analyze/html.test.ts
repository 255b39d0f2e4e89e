/**
 * The HTML report rendered by headless Chromium (Debian's chromium package): its plots are
 * in the DOM after rendering and their colours are on the screenshot. Skipped, with the
 * reason, only when chromium is not installed and CI is not set; on CI it must run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyze, type AnalyzeReport } from '../../src/analyze/analyze.js';
import { renderAnalyzeHtml } from '../../src/analyze/html.js';
import { PALETTE } from '../../src/analyze/plot.js';
import { prng, realData } from '../support/data.js';
import { countColor, readPng } from '../support/png.js';

const SIZES = [4096, 16384, 65536];

function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser']) {
    const r = spawnSync(name, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return name;
  }
  return undefined;
}

const chromium = findChromium();
const skip = chromium === undefined && !process.env.CI ? 'chromium is not installed (apt-get install -y chromium); CI is not set' : false;

let dir: string;
let page: string;
let report: AnalyzeReport;

function runChromium(extra: string[]): string {
  assert.ok(chromium, 'chromium must be installed on CI (apt-get install -y chromium)');
  const profile = mkdtempSync(join(dir, 'profile-'));
  const r = spawnSync(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--window-size=1200,2000',
      ...extra,
      pathToFileURL(page).href,
    ],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 },
  );
  assert.equal(r.status, 0, `chromium failed: ${r.stderr}`);
  return r.stdout;
}

/** The markup of the element <svg id="id"> ... </svg>. */
function svgById(dom: string, id: string): string {
  const start = dom.indexOf(`<svg id="${id}"`);
  assert.ok(start >= 0, `svg#${id} is in the rendered DOM`);
  return dom.slice(start, dom.indexOf('</svg>', start) + 6);
}

const count = (text: string, what: string): number => text.split(what).length - 1;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chunkyard-analyze-html-'));
  const base = Buffer.concat([realData(2 << 20), prng(31, 1 << 20)]);
  const files = [
    base,
    Buffer.concat([base.subarray(0, 1 << 20), prng(32, 200_000), base.subarray(1 << 20)]),
    Buffer.concat([prng(33, 300_000), base]),
  ].map((data, i) => {
    const f = join(dir, `gen${i + 1}.bin`);
    writeFileSync(f, data);
    return f;
  });
  report = await analyze(files, { avgSizes: SIZES });
  page = join(dir, 'report.html');
  writeFileSync(page, renderAnalyzeHtml(report));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the page is self-contained', () => {
  const html = readFileSync(page, 'utf8');
  assert.doesNotMatch(html, /<script|<link|<img|@import|url\(/i, 'no scripts, stylesheets, images or CSS fetches');
  assert.doesNotMatch(html, /(src|href)\s*=/i, 'nothing to fetch');
});

test('rendered by chromium, the DOM has the three plots with their series, and the tables', { skip, timeout: 180_000 }, () => {
  const dom = runChromium(['--dump-dom']);
  const ratio = svgById(dom, 'plot-ratio');
  assert.equal(count(ratio, 'class="series line"'), 2, 'reduction and dedupe ratio');
  assert.equal(count(ratio, '<circle'), 2 * SIZES.length, 'one marker per size and series');
  assert.match(ratio, /average chunk size/);
  assert.match(ratio, />16 KiB</);
  const hist = svgById(dom, 'plot-histogram');
  assert.equal(count(hist, 'class="series steps"'), SIZES.length);
  assert.ok(count(hist, '<rect') > 3 * SIZES.length, 'histogram bars');
  assert.match(hist, /share of chunks/);
  const gens = svgById(dom, 'plot-generations');
  assert.ok(count(gens, 'class="series line"') >= 2 * SIZES.length, 'unique and compressed per size');
  assert.match(gens, /stored bytes \(cumulative\)/);
  assert.match(gens, /MiB</);
  const results = dom.slice(dom.indexOf('<table id="results"'));
  assert.equal(count(results.slice(0, results.indexOf('</table>')), '<tr>'), 1 + SIZES.length);
  assert.ok(dom.includes('<table id="generations"'));
});

test('the screenshot shows the plots (their series colours are on it)', { skip, timeout: 180_000 }, () => {
  const shot = join(dir, 'report.png');
  runChromium([`--screenshot=${shot}`]);
  const png = readPng(readFileSync(shot));
  assert.equal(png.width, 1200);
  assert.equal(png.height, 2000);
  for (let i = 0; i < SIZES.length; i++) {
    const n = countColor(png, PALETTE[i]!);
    assert.ok(n > 300, `colour of series ${i} (${PALETTE[i]}): ${n} pixels`);
  }
});
