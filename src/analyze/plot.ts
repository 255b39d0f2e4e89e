/**
 * Small static SVG charts for the analyze report: axes with ticks and labels, grid lines,
 * a legend, line series (solid or dashed, with markers) and step histograms. The output is
 * plain SVG markup with no scripts and no external references; hover titles use <title>.
 */

export interface Tick {
  value: number;
  label: string;
}

export interface Axis {
  label: string;
  scale: 'linear' | 'log2';
  min: number;
  max: number;
  ticks: Tick[];
}

export interface LinePoint {
  x: number;
  y: number;
  /** Hover text. */
  title?: string;
  /** Text drawn next to the point. */
  label?: string;
  /** Draw the label below the point instead of above it. */
  labelBelow?: boolean;
}

export interface LineSeries {
  kind: 'line';
  name: string;
  color: string;
  dashed?: boolean;
  markers?: boolean;
  points: LinePoint[];
}

export interface StepSeries {
  kind: 'steps';
  name: string;
  color: string;
  bins: { from: number; to: number; y: number; title?: string }[];
}

export type Series = LineSeries | StepSeries;

export interface ChartSpec {
  /** id of the <svg> element. */
  id: string;
  title: string;
  width: number;
  height: number;
  x: Axis;
  y: Axis;
  series: Series[];
  /** Legend entries; default one per series. */
  legend?: { name: string; color: string; dashed?: boolean; fill?: boolean }[];
}

/** Colors of the series, in order (colorblind-friendly, from Okabe–Ito and Tableau). */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#7F3C8D', '#8C6D31'];

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\"";

/** Ticks at 1, 2, 2.5 or 5 × 10^k covering [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5, format: (v: number) => string = String): { min: number; max: number; ticks: Tick[] } {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks: Tick[] = [];
  for (let v = lo; v <= hi + step / 2; v += step) {
    const value = Math.round(v / step) * step;
    ticks.push({ value, label: format(Number(value.toPrecision(12))) });
  }
  return { min: lo, max: hi, ticks };
}

/** A linear axis for byte counts, ticks in the one binary unit that suits the largest value. */
export function bytesAxis(label: string, maxValue: number, count = 5): Axis {
  const units = [['B', 1], ['KiB', 2 ** 10], ['MiB', 2 ** 20], ['GiB', 2 ** 30], ['TiB', 2 ** 40]] as const;
  let [unit, size]: readonly [string, number] = units[0];
  for (const u of units) if (maxValue >= u[1]) [unit, size] = u;
  const t = niceTicks(0, Math.max(maxValue / size, 1e-9), count, (v) => `${v} ${unit}`);
  return {
    label,
    scale: 'linear',
    min: 0,
    max: t.max * size,
    ticks: t.ticks.map((k) => ({ value: k.value * size, label: k.value === 0 ? '0' : k.label })),
  };
}

/** A log2 axis with ticks at powers of two between min and max (thinned to at most ~8). */
export function log2Axis(label: string, min: number, max: number, format: (v: number) => string): Axis {
  const lo = Math.floor(Math.log2(min));
  const hi = Math.ceil(Math.log2(max));
  const every = Math.max(1, Math.ceil((hi - lo + 1) / 8));
  const ticks: Tick[] = [];
  for (let k = lo; k <= hi; k++) if ((k - lo) % every === 0) ticks.push({ value: 2 ** k, label: format(2 ** k) });
  return { label, scale: 'log2', min: 2 ** lo, max: 2 ** hi, ticks };
}

function scaler(axis: Axis, from: number, to: number): (v: number) => number {
  if (axis.scale === 'log2') {
    const a = Math.log2(axis.min);
    const b = Math.log2(axis.max);
    return (v) => from + ((Math.log2(Math.max(v, axis.min)) - a) / (b - a || 1)) * (to - from);
  }
  return (v) => from + ((v - axis.min) / (axis.max - axis.min || 1)) * (to - from);
}

const f1 = (v: number): string => (Math.round(v * 10) / 10).toString();

/** The chart as one <svg> element. */
export function renderChart(spec: ChartSpec): string {
  const { width, height } = spec;
  const legend = spec.legend ?? spec.series.map((s) => ({ name: s.name, color: s.color, dashed: s.kind === 'line' && s.dashed, fill: s.kind === 'steps' }));
  // Legend rows: items flow left to right and wrap.
  const rows: { name: string; color: string; dashed?: boolean; fill?: boolean; x: number; row: number }[] = [];
  let lx = 0;
  let row = 0;
  const maxLegendWidth = width - 32;
  for (const item of legend) {
    const w = 34 + item.name.length * 6.6;
    if (lx > 0 && lx + w > maxLegendWidth) {
      lx = 0;
      row++;
    }
    rows.push({ ...item, x: lx, row });
    lx += w + 14;
  }
  const legendRows = legend.length > 0 ? row + 1 : 0;
  // Room on the left for the longest y tick label (about 7 px per character at 12 px) and the axis title.
  const longest = Math.max(0, ...spec.y.ticks.map((t) => t.label.length));
  const m = { left: Math.max(64, 44 + Math.ceil(longest * 7)), right: 24, top: 44 + legendRows * 20, bottom: 58 };
  const x0 = m.left;
  const x1 = width - m.right;
  const y0 = height - m.bottom;
  const y1 = m.top;
  const sx = scaler(spec.x, x0, x1);
  const sy = scaler(spec.y, y0, y1);
  const out: string[] = [];
  out.push(
    `<svg id="${escapeXml(spec.id)}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(spec.title)}" ${FONT} font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text class="chart-title" x="16" y="24" font-size="15" font-weight="600" fill="#1a1a2e">${escapeXml(spec.title)}</text>`);
  rows.forEach((r) => {
    const lxp = 16 + r.x;
    const ly = 44 + r.row * 20;
    if (r.fill) out.push(`<rect x="${lxp}" y="${ly - 9}" width="24" height="10" fill="${r.color}" fill-opacity="0.25" stroke="${r.color}" stroke-width="1.5"/>`);
    else out.push(`<line x1="${lxp}" y1="${ly - 4}" x2="${lxp + 24}" y2="${ly - 4}" stroke="${r.color}" stroke-width="2.5"${r.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lxp + 30}" y="${ly}" fill="#333">${escapeXml(r.name)}</text>`);
  });
  // Grid and y ticks.
  out.push('<g class="axis y-axis">');
  for (const t of spec.y.ticks) {
    const y = f1(sy(t.value));
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e3e6eb" stroke-width="1"/>`);
    out.push(`<text x="${x0 - 8}" y="${y}" dy="0.32em" text-anchor="end" fill="#555">${escapeXml(t.label)}</text>`);
  }
  out.push(
    `<text x="${18}" y="${f1((y0 + y1) / 2)}" transform="rotate(-90 18 ${f1((y0 + y1) / 2)})" text-anchor="middle" fill="#333" font-size="13">${escapeXml(spec.y.label)}</text>`,
  );
  out.push('</g>');
  out.push('<g class="axis x-axis">');
  for (const t of spec.x.ticks) {
    const x = f1(sx(t.value));
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="#888"/>`);
    out.push(`<text x="${x}" y="${y0 + 19}" text-anchor="middle" fill="#555">${escapeXml(t.label)}</text>`);
  }
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="#888"/>`);
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#888"/>`);
  out.push(`<text x="${f1((x0 + x1) / 2)}" y="${height - 14}" text-anchor="middle" fill="#333" font-size="13">${escapeXml(spec.x.label)}</text>`);
  out.push('</g>');
  // Series.
  for (const s of spec.series) {
    if (s.kind === 'steps') {
      out.push(`<g class="series steps" data-name="${escapeXml(s.name)}">`);
      let d = '';
      for (const b of s.bins) {
        const a = sx(b.from);
        const c = sx(b.to);
        const y = sy(b.y);
        out.push(
          `<rect x="${f1(a)}" y="${f1(y)}" width="${f1(Math.max(0, c - a))}" height="${f1(Math.max(0, y0 - y))}" fill="${s.color}" fill-opacity="0.16">${b.title ? `<title>${escapeXml(b.title)}</title>` : ''}</rect>`,
        );
        d += `${d === '' ? `M${f1(a)},${y0}` : ''} L${f1(a)},${f1(y)} L${f1(c)},${f1(y)}`;
      }
      if (s.bins.length > 0) d += ` L${f1(sx(s.bins[s.bins.length - 1]!.to))},${y0}`;
      out.push(`<path d="${d.trim()}" fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round"/>`);
      out.push('</g>');
      continue;
    }
    out.push(`<g class="series line" data-name="${escapeXml(s.name)}">`);
    if (s.points.length > 1) {
      const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f1(sx(p.x))},${f1(sy(p.y))}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`);
    }
    if (s.markers || s.points.length === 1) {
      for (const p of s.points) {
        out.push(
          `<circle cx="${f1(sx(p.x))}" cy="${f1(sy(p.y))}" r="4.5" fill="${s.dashed ? '#ffffff' : s.color}" stroke="${s.color}" stroke-width="2">${p.title ? `<title>${escapeXml(p.title)}</title>` : ''}</circle>`,
        );
      }
    }
    for (const p of s.points) {
      if (p.label) {
        const ly = p.labelBelow ? sy(p.y) + 20 : sy(p.y) - 11;
        out.push(`<text x="${f1(sx(p.x))}" y="${f1(ly)}" text-anchor="middle" fill="${s.color}" font-size="11" font-weight="600">${escapeXml(p.label)}</text>`);
      }
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n');
}
