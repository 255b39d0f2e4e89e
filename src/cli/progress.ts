import { humanBytes } from '../util/format.js';
/**
 * Progress of the long commands, on stderr only (stdout carries the data or the result):
 *
 * - stderr is a terminal, no --json: one line redrawn in place, at most 10 times a second:
 *   "phase: 1.2 GiB of 4.0 GiB  30%  250.0 MiB/s  ETA 0:12" (percentage and ETA when the
 *   total is known; the rate is the average since the phase began).
 * - --json: one JSON object per line on stderr, at most once a second, whatever stderr is:
 *   {"progress":{"command","phase","done","total","unit","percent","rate","etaSeconds"}}
 *   (total, percent and etaSeconds are null when unknown; rate is per second). A program
 *   reading stderr under --json can parse every line: failures are JSON there too (main.ts).
 * - otherwise (a log file, a pipe, cron): nothing.
 */
import type { Writable } from 'node:stream';

export type ProgressUnit = 'bytes' | 'items';

export interface ProgressEvent {
  /** What the command is doing now; a new phase restarts the rate. */
  phase: string;
  done: number;
  /** The phase's total, when known. */
  total?: number;
  unit: ProgressUnit;
  /** Extra words for the terminal line ("new 1.2 MiB"). */
  note?: string;
}

export interface Progress {
  update(event: ProgressEvent): void;
  /** Clears the terminal line (idempotent); call before printing a result. */
  done(): void;
}

/** Terminal redraws at most this often. */
const TTY_INTERVAL_MS = 100;
/** JSON lines at most this often. */
const JSON_INTERVAL_MS = 1000;

/**
 * The progress of `command`, shown as the file comment says. CHUNKYARD_PROGRESS_MS in `env`
 * sets the interval (ms) between updates in either mode.
 */
export function progressReporter(io: { stderr: Writable; env: NodeJS.ProcessEnv }, options: { command: string; json?: boolean }): Progress {
  const stderr = io.stderr;
  const tty = (stderr as Writable & { isTTY?: boolean }).isTTY === true;
  const mode = options.json ? 'json' : tty ? 'tty' : 'quiet';
  const configured = Number(io.env['CHUNKYARD_PROGRESS_MS']);
  const interval = Number.isFinite(configured) && configured >= 0 && io.env['CHUNKYARD_PROGRESS_MS'] !== '' ? configured : mode === 'json' ? JSON_INTERVAL_MS : TTY_INTERVAL_MS;
  let last = 0;
  let shown = false;
  let phase: string | undefined;
  let phaseStarted = Date.now();
  return {
    update(e) {
      if (mode === 'quiet') return;
      const now = Date.now();
      if (e.phase !== phase) {
        phase = e.phase;
        phaseStarted = now;
      }
      // JSON: the first line after one interval, so that quick commands print none.
      if (mode === 'json' && last === 0) last = now;
      if (now - last < interval) return;
      last = now;
      const seconds = (now - phaseStarted) / 1000;
      const rate = seconds > 0 ? e.done / seconds : 0;
      const total = e.total !== undefined && e.total > 0 ? e.total : undefined;
      const percent = total !== undefined ? Math.min(100, (100 * e.done) / total) : undefined;
      const eta = total !== undefined && rate > 0 ? Math.max(0, (total - e.done) / rate) : undefined;
      if (mode === 'json') {
        const body = { command: options.command, phase: e.phase, done: e.done, total: total ?? null, unit: e.unit, percent: percent === undefined ? null : Math.round(percent * 10) / 10, rate: Math.round(rate), etaSeconds: eta === undefined ? null : Math.round(eta) };
        stderr.write(JSON.stringify({ progress: body }) + '\n');
        return;
      }
      shown = true;
      stderr.write(`\r\x1b[K${progressText(e, rate, percent, eta)}`);
    },
    done() {
      if (mode === 'tty' && shown) stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

/** The terminal line of one event. */
export function progressText(e: ProgressEvent, ratePerSecond: number, percent: number | undefined, etaSeconds: number | undefined): string {
  const amount = (n: number) => (e.unit === 'bytes' ? humanBytes(n) : String(n));
  const parts = [`${e.phase}: ${amount(e.done)}${e.total !== undefined ? ` of ${amount(e.total)}` : ''}`];
  if (percent !== undefined) parts.push(`${percent.toFixed(percent < 10 ? 1 : 0)}%`);
  if (ratePerSecond > 0) parts.push(e.unit === 'bytes' ? `${humanBytes(ratePerSecond)}/s` : `${ratePerSecond.toFixed(ratePerSecond < 10 ? 1 : 0)}/s`);
  if (etaSeconds !== undefined) parts.push(`ETA ${clock(etaSeconds)}`);
  if (e.note) parts.push(e.note);
  return parts.join('  ');
}

/** Seconds as "m:ss" or "h:mm:ss". */
export function clock(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A one-line progress display on stderr, only when stderr is a terminal (free text; analyze uses it). */
export interface ProgressLine {
  update(text: string): void;
  done(): void;
}

export function progressLine(stderr: Writable): ProgressLine {
  const tty = (stderr as Writable & { isTTY?: boolean }).isTTY === true;
  let last = 0;
  let shown = false;
  return {
    update(text: string) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < TTY_INTERVAL_MS) return;
      last = now;
      shown = true;
      stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (tty && shown) stderr.write('\r\x1b[K');
    },
  };
}

export function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${humanBytes(bytes / seconds)}/s` : '';
}


export { humanBytes };
