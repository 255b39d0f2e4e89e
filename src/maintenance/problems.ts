/**
 * Problems that check, repair and prune report: one per damaged thing, with the error code a
 * reader of that thing would get and where it is (snapshot, pack, offset in the pack).
 * docs/errors.md lists the codes; docs/operations.md what to do about each.
 */
import type { ErrorCode } from '../errors.js';

/** Codes of warnings: conditions that lose no data (leftovers of crashes, work for prune). */
export type WarningCode =
  | 'UNREFERENCED_PACK' // a pack no snapshot needs (forgotten data, a crashed backup): prune deletes it
  | 'UNREFERENCED_RECIPE' // a recipe no manifest names (a crash between recipe and manifest): prune deletes it
  | 'UNREFERENCED_STAGING' // staging objects without a staged snapshot: prune condemns them (a writer may be about to commit)
  | 'UNINDEXED_PACK' // a readable pack without a table object: writers do not dedupe against it; repair writes it
  | 'ORPHAN_TABLE' // a table object whose pack does not exist: prune removes it
  | 'PACK_VANISHED' // a pack was deleted while check ran (prune beside it)
  | 'INDEX_STATS' // (no longer reported: check reads no local index)
  | 'DAMAGED_OBJECT'; // something repair moved aside under damaged/

export interface Problem {
  code: ErrorCode | WarningCode;
  message: string;
  /** The snapshot affected, if any. */
  snapshot?: string;
  /** The pack object name, if any. */
  pack?: string;
  /** Offset in the pack of the chunk concerned, if any. */
  offset?: number;
}

/**
 * A list of problems that stays small: at most `perKey` problems per (code, snapshot, pack)
 * and `total` in all, then one summary line for the rest. A recipe with a million bad
 * entries gives a few lines, not a million.
 */
export class ProblemList {
  readonly items: Problem[] = [];
  private readonly counts = new Map<string, number>();
  private readonly omitted = new Map<string, { count: number; sample: Problem }>();
  private total = 0;

  constructor(private readonly perKey = 20, private readonly limit = 1000) {}

  add(p: Problem): void {
    this.total++;
    const key = `${p.code}|${p.snapshot ?? ''}|${p.pack ?? ''}`;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n <= this.perKey && this.items.length < this.limit) {
      this.items.push(p);
      return;
    }
    const o = this.omitted.get(key);
    if (o) o.count++;
    else this.omitted.set(key, { count: 1, sample: p });
  }

  get size(): number {
    return this.total;
  }

  /** The problems, then one line per kind that was cut short. */
  list(): Problem[] {
    const out = [...this.items];
    for (const { count, sample } of this.omitted.values()) {
      const { offset: _offset, ...where } = sample;
      out.push({ ...where, message: `… and ${count} more like this (${sample.code}${sample.snapshot ? `, snapshot ${sample.snapshot}` : ''}${sample.pack ? `, pack ${sample.pack}` : ''})` });
    }
    return out;
  }
}
