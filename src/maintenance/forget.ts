/**
 * forget: removes snapshots — their manifests only; the data they alone referenced is
 * reclaimed by prune. By id, or by a retention policy with restic's semantics, per target:
 *
 *   keep-last N     the N newest snapshots
 *   keep-daily N    the newest snapshot of each of the N newest days that have snapshots
 *   keep-weekly N   … of each of the N newest ISO weeks (Monday to Sunday) that have snapshots
 *   keep-monthly N  … of each of the N newest calendar months that have snapshots
 *
 * A snapshot kept by any rule is kept. Days, weeks and months are in UTC (snapshot times are
 * UTC; a store's answer must not depend on the time zone of the machine running forget).
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { listSnapshotIds, manifestName } from '../snapshot/manifest.js';

export interface RetentionPolicy {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export type KeepReason = 'last' | 'daily' | 'weekly' | 'monthly';

/** What forget needs to know of a snapshot. */
export interface SnapshotRef {
  id: string;
  target: string;
  /** ISO-8601 UTC. */
  time: string;
}

export interface RetentionResult<S extends SnapshotRef> {
  keep: { snapshot: S; reasons: KeepReason[] }[];
  remove: S[];
}

export function validateRetention(policy: RetentionPolicy): RetentionPolicy {
  const out: RetentionPolicy = {};
  for (const k of ['last', 'daily', 'weekly', 'monthly'] as const) {
    const v = policy[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw badArgument(`keep-${k} must be a whole number ≥ 0, not ${JSON.stringify(v)}`);
    out[k] = v;
  }
  if (Object.keys(out).length === 0) {
    throw badArgument('forget needs a policy (--keep-last, --keep-daily, --keep-weekly, --keep-monthly) or snapshot ids; it never removes snapshots by default');
  }
  return out;
}

function dayOf(t: Date): string {
  return t.toISOString().slice(0, 10);
}

function monthOf(t: Date): string {
  return t.toISOString().slice(0, 7);
}

/** ISO 8601 week: "2026-W48" (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeekOf(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day); // the Thursday of this week decides its year
  const year = d.getUTCFullYear();
  const week = Math.ceil(((d.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/**
 * Applies a policy to the snapshots of ONE target (the caller groups by target). Newest
 * first, each rule keeps a snapshot when it opens a new bucket (day, week, month; every
 * snapshot for `last`) while the rule still has room.
 */
export function applyRetention<S extends SnapshotRef>(snaps: readonly S[], policy: RetentionPolicy): RetentionResult<S> {
  const newestFirst = [...snaps].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.id < b.id ? 1 : -1));
  const rules: { reason: KeepReason; limit: number; bucket: (t: Date, s: S) => string; last?: string; kept: number }[] = [];
  if (policy.last) rules.push({ reason: 'last', limit: policy.last, bucket: (_t, s) => s.id, kept: 0 });
  if (policy.daily) rules.push({ reason: 'daily', limit: policy.daily, bucket: dayOf, kept: 0 });
  if (policy.weekly) rules.push({ reason: 'weekly', limit: policy.weekly, bucket: isoWeekOf, kept: 0 });
  if (policy.monthly) rules.push({ reason: 'monthly', limit: policy.monthly, bucket: monthOf, kept: 0 });
  const result: RetentionResult<S> = { keep: [], remove: [] };
  for (const s of newestFirst) {
    const t = new Date(s.time);
    const reasons: KeepReason[] = [];
    for (const r of rules) {
      if (r.kept >= r.limit) continue;
      const b = r.bucket(t, s);
      if (b === r.last) continue;
      r.last = b;
      r.kept++;
      reasons.push(r.reason);
    }
    if (reasons.length > 0) result.keep.push({ snapshot: s, reasons });
    else result.remove.push(s);
  }
  return result;
}

export interface ForgetOptions {
  /** Forget these snapshots (full ids or unique prefixes of at least 4 hex digits). */
  ids?: string[];
  /** Or apply this policy (per target). */
  policy?: RetentionPolicy;
  /** With a policy: only this target's snapshots. */
  target?: string;
  dryRun?: boolean;
}

export interface ForgetReport {
  dryRun: boolean;
  removed: SnapshotRef[];
  kept: (SnapshotRef & { reasons: KeepReason[] })[];
}

/**
 * Deletes the manifests forget selects. `snapshots` lists the readable snapshots (policy
 * mode never touches an unreadable one; by id, an unreadable manifest can be forgotten).
 * Validates everything before deleting anything.
 */
export async function forget(backend: Backend, snapshots: readonly SnapshotRef[], options: ForgetOptions): Promise<ForgetReport> {
  const hasIds = options.ids !== undefined && options.ids.length > 0;
  const hasPolicy = options.policy !== undefined && Object.values(options.policy).some((v) => v !== undefined);
  if (hasIds && hasPolicy) throw badArgument('forget takes snapshot ids or a --keep-* policy, not both');
  if (hasIds && options.target !== undefined) throw badArgument('--target goes with a --keep-* policy, not with snapshot ids');
  const report: ForgetReport = { dryRun: options.dryRun === true, removed: [], kept: [] };
  if (hasIds) {
    const all = await listSnapshotIds(backend);
    const known = new Map(snapshots.map((s) => [s.id, s]));
    const chosen = new Map<string, SnapshotRef>();
    for (const want of options.ids!) {
      if (typeof want !== 'string' || !/^[0-9a-f]{4,16}$/.test(want)) throw badArgument(`${JSON.stringify(want)} is not a snapshot id (16 hex digits, or a unique prefix of at least 4)`);
      const matches = all.filter((id) => id.startsWith(want));
      if (matches.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${want}; nothing was forgotten`);
      if (matches.length > 1) throw badArgument(`snapshot id prefix ${want} is ambiguous (${matches.length} snapshots); nothing was forgotten`);
      const id = matches[0]!;
      chosen.set(id, known.get(id) ?? { id, target: '?', time: '?' });
    }
    report.removed = [...chosen.values()];
  } else {
    const policy = validateRetention(options.policy ?? {});
    const byTarget = new Map<string, SnapshotRef[]>();
    for (const s of snapshots) {
      if (options.target !== undefined && s.target !== options.target) continue;
      let list = byTarget.get(s.target);
      if (!list) byTarget.set(s.target, (list = []));
      list.push(s);
    }
    for (const [, list] of [...byTarget.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const r = applyRetention(list, policy);
      for (const k of r.keep) report.kept.push({ id: k.snapshot.id, target: k.snapshot.target, time: k.snapshot.time, reasons: k.reasons });
      for (const s of r.remove) report.removed.push({ id: s.id, target: s.target, time: s.time });
    }
  }
  if (!options.dryRun) for (const s of report.removed) await backend.delete(manifestName(s.id));
  return report;
}
