/**
 * The daemon's status page (`GET /`, docs/daemon.md, "Status page"): for the targets a token
 * may read, the last backup (when, how long ago, its outcome), stored and logical bytes,
 * reduction and policy; the store's totals and its health as of the last check.
 *
 * Plain server-rendered HTML with inline CSS: no script, no font, no image, nothing fetched
 * (the Content-Security-Policy forbids it), so it works from an air-gapped browser, a
 * terminal browser, or `curl`. Rendering (`renderStatusPage`) is a pure function of a
 * `StatusModel`, which `statusModel` gathers.
 */
import type { DedupePolicy } from '../snapshot/manifest.js';
import type { SnapshotInfo, StoreStats } from '../store/store.js';
import { finishedAt, type UploadOutcome } from './metrics.js';

/** A backup older than this is flagged late (a daily backup that missed a run, with slack). */
export const LATE_AFTER_SECONDS = 26 * 3600;

/** What the page knows of the store's last check. The store records none today: undefined. */
export interface CheckSummary {
  /** When it ran (unix seconds). */
  time: number;
  ok: boolean;
  errors: number;
  warnings: number;
  readData: boolean;
  /** Who ran it ("cli", "daemon"), when known. */
  by?: string;
}

export interface TargetStatus {
  target: string;
  snapshots: number;
  staged: number;
  /** The newest snapshot: when its backup finished (unix seconds), its id and size. */
  last?: { finished: number; id: string; logicalBytes: number };
  /** An upload to this target failed after its newest snapshot (seen by this daemon since it started): when, and its code. */
  failedSince?: number;
  failureCode?: string;
  logicalBytes: number;
  /** What its backups added to the store (compressed new chunks, plus staged bytes). */
  storedBytes: number;
  policy: { dedupe: DedupePolicy; compression: string };
}

export interface StatusModel {
  /** When the page was made, and when the daemon started (unix seconds). */
  now: number;
  startedAt: number;
  storePath: string;
  store?: Pick<StoreStats, 'snapshots' | 'logicalBytes' | 'storedBytes' | 'uniqueBytes' | 'reductionRatio' | 'dedupeRatio' | 'stagingBytes' | 'packs'>;
  check?: CheckSummary;
  /** Position of the token in the tokens file, its access, and its quota and usage if it has one. */
  token: { index: number; access: string; quota?: number; used?: number };
  targets: TargetStatus[];
}

/** Gathers the model from the daemon's snapshot list, the store's stats and what the daemon saw. */
export async function statusModel(input: {
  snapshots: SnapshotInfo[];
  stats: StoreStats | undefined;
  outcomes: ReadonlyMap<string, UploadOutcome>;
  canRead: (target: string) => boolean;
  policyOf: (target: string) => Promise<{ dedupe: DedupePolicy; compression: string }>;
  check?: CheckSummary;
  now: number;
  startedAt: number;
  storePath: string;
  token: StatusModel['token'];
}): Promise<StatusModel> {
  const byTarget = new Map<string, SnapshotInfo[]>();
  for (const s of input.snapshots) {
    if (!input.canRead(s.target)) continue;
    let list = byTarget.get(s.target);
    if (!list) byTarget.set(s.target, (list = []));
    list.push(s);
  }
  // Targets the daemon saw fail but that have no snapshot yet are shown too.
  for (const t of input.outcomes.keys()) if (input.canRead(t) && !byTarget.has(t)) byTarget.set(t, []);
  const targets: TargetStatus[] = [];
  for (const [target, snaps] of [...byTarget].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    let last: SnapshotInfo | undefined;
    for (const s of snaps) if (!last || finishedAt(s) >= finishedAt(last)) last = s;
    const finished = last ? finishedAt(last) : undefined;
    const outcome = input.outcomes.get(target);
    const failure = outcome?.lastFailure;
    targets.push({
      target,
      snapshots: snaps.length,
      staged: snaps.filter((s) => s.staged).length,
      last: last && finished !== undefined ? { finished, id: last.id, logicalBytes: last.logicalBytes } : undefined,
      ...(failure !== undefined && (finished === undefined || failure > finished) ? { failedSince: failure, failureCode: outcome?.lastFailureCode } : {}),
      logicalBytes: snaps.reduce((n, s) => n + s.logicalBytes, 0),
      storedBytes: snaps.reduce((n, s) => n + (s.staged ? s.logicalBytes : s.storedBytes), 0),
      policy: await input.policyOf(target),
    });
  }
  return { now: input.now, startedAt: input.startedAt, storePath: input.storePath, store: input.stats, check: input.check, token: input.token, targets };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[i]}`;
}

/** "3 min", "5 h 2 min", "2 d 4 h": how long ago, to the two largest units. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

function isoSeconds(unix: number): string {
  return new Date(Math.round(unix) * 1000).toISOString().replace('.000Z', 'Z');
}

function ratio(logical: number, stored: number): string {
  return stored > 0 ? `${(logical / stored).toFixed(2)}×` : '–';
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const CSS = `
:root { color-scheme: light; --ok: #1a7f37; --late: #9a6700; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 14px 24px; display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header span { color: #c9d1d9; font-size: 13px; }
main { padding: 16px 24px 32px; max-width: 1200px; }
h2 { font-size: 15px; margin: 22px 0 8px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 18px; }
.card small { color: var(--muted); }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { background: #f0f3f6; font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: var(--ok); font-weight: 600; }
.late { color: var(--late); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
`;

/** The page, as a complete HTML document. */
export function renderStatusPage(m: StatusModel): string {
  const e = escapeHtml;
  const rows = m.targets.map((t) => {
    let outcome: string;
    let when = '<span class="muted">never</span>';
    let age = '';
    if (t.last) {
      const ago = m.now - t.last.finished;
      when = `<time datetime="${isoSeconds(t.last.finished)}">${isoSeconds(t.last.finished)}</time>`;
      age = formatAge(ago);
      outcome = ago > LATE_AFTER_SECONDS ? `<span class="late">late</span>` : `<span class="ok">ok</span>`;
    } else outcome = '<span class="muted">no backup</span>';
    if (t.failedSince !== undefined) outcome = `<span class="bad">failed</span> <span class="muted">${formatAge(m.now - t.failedSince)} ago${t.failureCode ? `, ${e(t.failureCode)}` : ''}</span>`;
    return (
      `<tr><td><code>${e(t.target)}</code></td><td>${when}</td><td class="num">${age}</td><td>${outcome}</td>` +
      `<td class="num">${t.snapshots}${t.staged ? ` <span class="muted">(${t.staged} staged)</span>` : ''}</td>` +
      `<td class="num">${formatBytes(t.logicalBytes)}</td><td class="num">${formatBytes(t.storedBytes)}</td><td class="num">${ratio(t.logicalBytes, t.storedBytes)}</td>` +
      `<td>${e(t.policy.dedupe)}, ${e(t.policy.compression)}</td></tr>`
    );
  });
  const s = m.store;
  const card = (value: string, label: string) => `<div class="card"><b>${value}</b><small>${label}</small></div>`;
  const storeCards = s
    ? [
        card(String(s.snapshots), 'snapshots'),
        card(formatBytes(s.logicalBytes), 'logical bytes'),
        card(formatBytes(s.storedBytes + s.stagingBytes), 'stored bytes (packs + staging)'),
        card(ratio(s.logicalBytes, s.storedBytes + s.stagingBytes), 'reduction (dedupe and compression)'),
        card(s.dedupeRatio > 0 ? `${s.dedupeRatio.toFixed(2)}×` : '–', 'dedupe ratio'),
        card(formatBytes(s.stagingBytes), 'waiting in staging'),
      ].join('')
    : '<p class="bad">The store\'s totals could not be read just now.</p>';
  const health = m.check
    ? `<p>${m.check.ok ? '<span class="ok">healthy</span>' : '<span class="bad">problems found</span>'} at the last check, ` +
      `<time datetime="${isoSeconds(m.check.time)}">${isoSeconds(m.check.time)}</time> (${formatAge(m.now - m.check.time)} ago): ` +
      `${m.check.errors} errors, ${m.check.warnings} warnings${m.check.readData ? ', data read' : ', metadata only'}${m.check.by ? ` (run by ${m.check.by === 'daemon' ? 'this daemon' : e(m.check.by)})` : ''}.</p>`
    : '<p><span class="muted">never checked</span>: this machine has no record of a <code>chunkyard check</code> of this store (the daemon runs one every <code>--check-interval</code>).</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60">
<title>chunkyard: ${m.targets.length} targets</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>chunkyard</h1><span>store <code>${e(m.storePath)}</code></span><span>daemon up ${formatAge(m.now - m.startedAt)}</span><span>as of ${isoSeconds(m.now)}</span></header>
<main>
<h2>Targets</h2>
${
  rows.length > 0
    ? `<table id="targets">
<thead><tr><th>target</th><th>last backup</th><th class="num">age</th><th>outcome</th><th class="num">snapshots</th><th class="num">logical</th><th class="num">stored</th><th class="num">reduction</th><th>policy</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>`
    : '<p class="muted">No target this token may read has a snapshot.</p>'
}
<h2>Store</h2>
<div class="cards">${storeCards}</div>
<h2>Health</h2>
${health}
<footer>Token #${m.token.index} (${e(m.token.access)}${m.token.quota !== undefined ? `, quota: ${formatBytes(m.token.used ?? 0)} of ${formatBytes(m.token.quota)} used` : ''}) sees the targets its globs cover. "late": the newest backup finished more than ${LATE_AFTER_SECONDS / 3600} h ago; "failed": an upload to the target failed after it (since the daemon started). Stored bytes of a target: what its backups added (compressed new chunks, and staged bytes); chunks shared between targets count where they were first stored. The page refreshes every 60 s.</footer>
</main>
</body>
</html>
`;
}
