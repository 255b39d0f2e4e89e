/**
 * forget: removes snapshots — their manifests only; the data they alone referenced is
 * reclaimed by prune. By id, or by a retention policy with restic's semantics, applied to
 * each group of snapshots with the same target and host (restic's default grouping is host
 * and paths; a target is our path):
 *
 *   keep-last N       the N newest snapshots
 *   keep-hourly N     the newest snapshot of each of the N newest hours that have snapshots
 *   keep-daily N      … of each of the N newest days that have snapshots
 *   keep-weekly N     … of each of the N newest ISO weeks (Monday to Sunday) that have snapshots
 *   keep-monthly N    … of each of the N newest calendar months that have snapshots
 *   keep-yearly N     … of each of the N newest calendar years that have snapshots
 *   keep-within D     every snapshot newer than D ("1y5m7d2h") before the group's newest one
 *   keep-tag T        every snapshot carrying all tags of the list T ("a" or "a,b"); repeatable
 *
 * A snapshot kept by any rule is kept. Hours, days, weeks, months and years are in UTC
 * (snapshot times are UTC; a store's answer must not depend on the time zone of the machine
 * running forget). Filters (target, host, tag lists) choose which snapshots forget considers
 * at all; the others are neither kept nor removed.
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { listSnapshotIds, manifestName } from '../snapshot/manifest.js';
import { snapshotMatcher, tagLists, validateHost, type SnapshotFilter } from '../snapshot/info.js';

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** A duration "1y5m7d2h" (any of the parts, in this order): keep what is newer than the group's newest snapshot minus it. */
  within?: string;
  /** Tag lists ("a" or "a,b"): keep every snapshot that carries all tags of one of them. */
  tags?: string[];
}

export type KeepReason = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly' | 'within' | 'tag';

/** What forget needs to know of a snapshot (the store passes snapshot objects, src/snapshot/info.ts). */
export interface SnapshotRef {
  id: string;
  target: string;
  /** ISO-8601 UTC. */
  time: string;
  host?: string | null;
  tags?: readonly string[];
}

const COUNTS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** A duration for keep-within: years, months, days, hours, e.g. "30d", "1y6m", "2d12h". */
export function parseKeepWithin(text: unknown): { years: number; months: number; days: number; hours: number } {
  const m = typeof text === 'string' ? /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$/.exec(text) : null;
  if (!m || text === '') throw badArgument(`keep-within ${JSON.stringify(text)} is not a duration such as 30d, 1y6m or 2d12h (years y, months m, days d, hours h, in that order)`);
  const [years, months, days, hours] = [m[1], m[2], m[3], m[4]].map((v) => Number(v ?? 0)) as [number, number, number, number];
  return { years, months, days, hours };
}

export interface RetentionResult<S extends SnapshotRef> {
  keep: { snapshot: S; reasons: KeepReason[] }[];
  remove: S[];
}

export function validateRetention(policy: RetentionPolicy): RetentionPolicy {
  const out: RetentionPolicy = {};
  for (const k of COUNTS) {
    const v = policy[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw badArgument(`keep-${k} must be a whole number ≥ 0, not ${JSON.stringify(v)}`);
    out[k] = v;
  }
  if (policy.within !== undefined) {
    parseKeepWithin(policy.within);
    out.within = policy.within;
  }
  if (policy.tags !== undefined) {
    tagLists(policy.tags, 'keep-tag');
    out.tags = [...policy.tags];
  }
  if (Object.keys(out).length === 0) {
    throw badArgument('forget needs a policy (--keep-last, -hourly, -daily, -weekly, -monthly, -yearly, --keep-within, --keep-tag) or snapshot ids; it never removes snapshots by default');
  }
  return out;
}

function hourOf(t: Date): string {
  return t.toISOString().slice(0, 13);
}

function yearOf(t: Date): string {
  return t.toISOString().slice(0, 4);
}

/** The keep-within cut-off: `newest` minus the duration, by the calendar (UTC), as restic's AddDate. */
function withinCutoff(newest: Date, within: string): number {
  const d = parseKeepWithin(within);
  const t = new Date(newest.getTime());
  t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months, t.getUTCDate() - d.days);
  t.setUTCHours(t.getUTCHours() - d.hours);
  return t.getTime();
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
  if (policy.hourly) rules.push({ reason: 'hourly', limit: policy.hourly, bucket: hourOf, kept: 0 });
  if (policy.daily) rules.push({ reason: 'daily', limit: policy.daily, bucket: dayOf, kept: 0 });
  if (policy.weekly) rules.push({ reason: 'weekly', limit: policy.weekly, bucket: isoWeekOf, kept: 0 });
  if (policy.monthly) rules.push({ reason: 'monthly', limit: policy.monthly, bucket: monthOf, kept: 0 });
  if (policy.yearly) rules.push({ reason: 'yearly', limit: policy.yearly, bucket: yearOf, kept: 0 });
  const cutoff = policy.within !== undefined && newestFirst.length > 0 ? withinCutoff(new Date(newestFirst[0]!.time), policy.within) : undefined;
  const keepTags = tagLists(policy.tags, 'keep-tag');
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
    if (cutoff !== undefined && t.getTime() > cutoff) reasons.push('within');
    if (keepTags.some((list) => list.every((tag) => s.tags?.includes(tag)))) reasons.push('tag');
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
  /** With a policy: only this host's snapshots. */
  host?: string;
  /** With a policy: only snapshots carrying all tags of one of these lists ("a" or "a,b"). */
  tags?: string[];
  dryRun?: boolean;
}

/** kept and removed hold the snapshot objects (src/snapshot/info.ts) forget was given. */
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
  const hasFilter = options.target !== undefined || options.host !== undefined || options.tags !== undefined;
  if (hasIds && hasFilter) throw badArgument('--target, --host and --tag go with a --keep-* policy, not with snapshot ids');
  if (options.host !== undefined) validateHost(options.host);
  const filter: SnapshotFilter = { target: options.target, host: options.host, tags: options.tags };
  const matches = snapshotMatcher(filter);
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
    // Groups: same target and same host (a null host, from a version-1 manifest, is a group of its own).
    const groups = new Map<string, SnapshotRef[]>();
    for (const s of snapshots) {
      if (!matches({ target: s.target, host: s.host ?? null, tags: s.tags ?? [] })) continue;
      const key = JSON.stringify([s.target, s.host ?? null]);
      let list = groups.get(key);
      if (!list) groups.set(key, (list = []));
      list.push(s);
    }
    for (const [, list] of [...groups.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const r = applyRetention(list, policy);
      for (const k of r.keep) report.kept.push({ ...k.snapshot, reasons: k.reasons });
      for (const s of r.remove) report.removed.push(s);
    }
  }
  if (!options.dryRun) for (const s of report.removed) await backend.delete(manifestName(s.id));
  return report;
}
