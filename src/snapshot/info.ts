/**
 * The one public description of a snapshot: what `Store.backup` resolves to, what
 * `Store.snapshots` lists, what `chunkyard backup --json` and `snapshots --json` print and
 * what the daemon answers. Every field is always present (null or empty where there is
 * nothing), so a consumer reads one shape whichever path produced it. docs/api.md
 * "The snapshot object" documents it; add a field here and there, never in one caller.
 *
 * Also the labels a snapshot carries (host, tags, free key=value metadata): their rules, and
 * the filter that selects snapshots by target, host and tags.
 */
import { hostname } from 'node:os';
import { badArgument } from '../errors.js';
import type { DedupePolicy, SnapshotManifest } from './manifest.js';

export interface SnapshotInfo {
  /** 16 lowercase hex digits. */
  id: string;
  target: string;
  /** ISO-8601 UTC time the backup started. */
  time: string;
  /** The machine it came from (default: os.hostname() of the process that backed it up); null for snapshots written before manifest version 2. */
  host: string | null;
  /** Sorted, without duplicates; [] when none. */
  tags: string[];
  /** Free key=value labels; {} when none. */
  metadata: Record<string, string>;
  policy: DedupePolicy;
  /** "application": a `pre` hook quiesced the source before it was read; "crash": read as it was (no hook, a failed one under `continue`, or written before hooks existed). */
  consistency: 'application' | 'crash';
  /** A deferred snapshot still in staging (restorable; process moves it into packs). */
  staged: boolean;
  logicalBytes: number;
  /** Chunks in its recipe (0 while staged). */
  chunks: number;
  /** What its backup added to the store (for a deferred snapshot: what process added; 0 while staged). */
  newChunks: number;
  newBytes: number;
  storedBytes: number;
  /** How long its backup (for a processed deferred snapshot: its processing) took. */
  seconds: number;
}

/** The snapshot object of a manifest. */
export function snapshotInfo(m: SnapshotManifest): SnapshotInfo {
  return {
    id: m.id,
    target: m.target,
    time: m.time,
    host: m.host,
    tags: [...m.tags],
    metadata: { ...m.metadata },
    policy: m.policy,
    consistency: m.consistency ?? 'crash',
    staged: m.staging !== null,
    logicalBytes: m.logicalBytes,
    chunks: m.chunks,
    newChunks: m.ingest.newChunks,
    newBytes: m.ingest.newBytes,
    storedBytes: m.ingest.storedBytes,
    seconds: m.ingest.seconds,
  };
}

/** The labels a backup records. */
export interface SnapshotLabels {
  host: string;
  tags: string[];
  metadata: Record<string, string>;
}

export const MAX_TAGS = 64;
export const MAX_METADATA_KEYS = 64;
const MAX_LABEL_CHARS = 128;
const MAX_VALUE_CHARS = 1024;
/** Tags and metadata keys: like target names, plus ':' and '@' ("env:prod", "db@replica"). No ',' (it separates tags in `--tag a,b`). */
const LABEL = /^[A-Za-z0-9._:@+-]+$/;

/** A tag or metadata key, checked; `what` names it in the error. */
function label(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw badArgument(`${what} must be a non-empty string, not ${JSON.stringify(value)}`);
  if (value.length > MAX_LABEL_CHARS) throw badArgument(`${what} ${JSON.stringify(value.slice(0, 20))}… is ${value.length} characters long; the limit is ${MAX_LABEL_CHARS}`);
  if (!LABEL.test(value)) throw badArgument(`${what} ${JSON.stringify(value)} may contain only letters, digits and . _ : @ + -`);
  return value;
}

export function validateTag(tag: unknown): string {
  return label(tag, 'tag');
}

/** A host name: 1–255 printable characters without spaces (not only a DNS name: "laptop (old)" is refused, "db-1.example" is fine). */
export function validateHost(host: unknown): string {
  if (typeof host !== 'string' || host.length === 0) throw badArgument(`host must be a non-empty string, not ${JSON.stringify(host)}`);
  if (host.length > 255) throw badArgument(`host is ${host.length} characters long; the limit is 255`);
  if (!/^[\x21-\x7e]+$/.test(host)) throw badArgument(`host ${JSON.stringify(host)} may contain only printable ASCII characters without spaces`);
  return host;
}

/** The labels of a new snapshot from a backup's options: host defaults to os.hostname(). */
export function snapshotLabels(options: { host?: unknown; tags?: unknown; metadata?: unknown }): SnapshotLabels {
  const host = options.host === undefined ? defaultHost() : validateHost(options.host);
  let tags: string[] = [];
  if (options.tags !== undefined) {
    if (!Array.isArray(options.tags)) throw badArgument(`tags must be an array of strings, not ${JSON.stringify(options.tags)}`);
    tags = [...new Set(options.tags.map(validateTag))].sort();
    if (tags.length > MAX_TAGS) throw badArgument(`${tags.length} tags; a snapshot carries at most ${MAX_TAGS}`);
  }
  const metadata: Record<string, string> = {};
  if (options.metadata !== undefined) {
    const m = options.metadata;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw badArgument(`metadata must be an object of string values, not ${JSON.stringify(m)}`);
    const entries = Object.entries(m as Record<string, unknown>);
    if (entries.length > MAX_METADATA_KEYS) throw badArgument(`${entries.length} metadata keys; a snapshot carries at most ${MAX_METADATA_KEYS}`);
    for (const [k, v] of entries.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      label(k, 'metadata key');
      if (typeof v !== 'string') throw badArgument(`metadata ${k} must be a string, not ${JSON.stringify(v)}`);
      if (v.length > MAX_VALUE_CHARS) throw badArgument(`metadata ${k} is ${v.length} characters long; the limit is ${MAX_VALUE_CHARS}`);
      metadata[k] = v;
    }
  }
  return { host, tags, metadata };
}

/** os.hostname(), or "unknown" where it is empty or unusable as a host label. */
export function defaultHost(): string {
  const h = hostname();
  try {
    return validateHost(h);
  } catch {
    return 'unknown';
  }
}

/** `--meta KEY=VALUE` values into a metadata object (a key given twice is refused). */
export function parseMetadata(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw badArgument(`--meta ${JSON.stringify(pair)}: expected KEY=VALUE`);
    const key = pair.slice(0, eq);
    if (Object.hasOwn(out, key)) throw badArgument(`--meta ${key} is given more than once`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Which snapshots a listing, a restore or a forget considers. `tags` follows restic: each
 * entry is a tag list "a,b" that a snapshot must carry all of; a snapshot matches when it
 * carries any one of the lists. Host and target must be equal.
 */
export interface SnapshotFilter {
  target?: string;
  host?: string;
  tags?: string[];
}

/** Parses and checks the tag lists of a filter: ["a,b", "c"] → [["a","b"],["c"]]. */
export function tagLists(tags: unknown, what = 'tags'): string[][] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) throw badArgument(`${what} must be an array of tag lists ("a" or "a,b"), not ${JSON.stringify(tags)}`);
  return tags.map((list) => {
    if (typeof list !== 'string') throw badArgument(`${what} entry ${JSON.stringify(list)} must be a string ("a" or "a,b")`);
    return list.split(',').map(validateTag);
  });
}

/** A predicate for a checked filter. */
export function snapshotMatcher(filter: SnapshotFilter): (s: { target: string; host: string | null; tags: readonly string[] }) => boolean {
  const lists = tagLists(filter.tags);
  const host = filter.host === undefined ? undefined : validateHost(filter.host);
  return (s) =>
    (filter.target === undefined || s.target === filter.target) &&
    (host === undefined || s.host === host) &&
    (lists.length === 0 || lists.some((list) => list.every((t) => s.tags.includes(t))));
}
