/**
 * The daemon's log: one JSON object per line (docs/daemon.md, "Logs"), each with a `level`.
 * Lines below the configured level are not written (nor built, where the caller asks
 * `enabled` first).
 */
import type { Writable } from 'node:stream';
import { badArgument } from '../errors.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
/** Most severe first: a level logs itself and everything before it. */
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export function parseLogLevel(value: string): LogLevel {
  if (!LOG_LEVELS.includes(value as LogLevel)) throw badArgument(`--log-level = ${JSON.stringify(value)}: must be one of ${LOG_LEVELS.join(', ')}`);
  return value as LogLevel;
}

export class Logger {
  private readonly threshold: number;

  constructor(
    private readonly out: Writable,
    readonly level: LogLevel = 'info',
  ) {
    this.threshold = LOG_LEVELS.indexOf(level);
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.threshold;
  }

  /** Writes `{"time", "level", ...fields}` if `level` is logged. */
  write(level: LogLevel, fields: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    this.out.write(JSON.stringify({ time: new Date().toISOString(), level, ...fields }) + '\n');
  }
}
