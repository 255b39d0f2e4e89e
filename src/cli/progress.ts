/** A one-line progress display on stderr, only when stderr is a terminal. */
import type { Writable } from 'node:stream';

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
      if (now - last < 100) return;
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

/** A size for people: "117.6 MiB". */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}
