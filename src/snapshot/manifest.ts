/**
 * Snapshot manifests: snapshots/<id>.json, a sealed JSON file written exclusively and
 * atomically as the LAST step of a backup. Its presence is the commit: a crash before it
 * leaves at most unreferenced packs and recipes, never a snapshot pointing at nothing.
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { mapAhead } from '../util/async.js';

/**
 * The version written. Version 1 (no host, tags or metadata) is still read: it reads as
 * host null, tags [], metadata {}; a manifest rewritten by process or prune is written as
 * version 2. docs/format.md "Snapshot manifests".
 */
export const MANIFEST_VERSION = 2;
const READABLE_VERSIONS: readonly number[] = [1, 2];
export type DedupePolicy = 'immediate' | 'deferred' | 'disabled';
export const POLICIES: readonly DedupePolicy[] = ['immediate', 'deferred', 'disabled'];

export interface SnapshotManifest {
  version: number;
  id: string;
  target: string;
  /** ISO-8601 UTC time the backup started. */
  time: string;
  logicalBytes: number;
  chunks: number;
  policy: DedupePolicy;
  /** Where the backup came from (version 2; null when unknown: version-1 manifests). */
  host: string | null;
  /** Labels, sorted and unique (version 2; [] in version 1). */
  tags: string[];
  /** Free key=value labels (version 2; {} in version 1). */
  metadata: Record<string, string>;
  /**
   * Whether the source was quiesced by a `pre` hook that succeeded ("application") or read
   * as it was ("crash": no hook, or a failed one under --on-hook-error continue). Absent in
   * manifests written before hooks existed: read as "crash". docs/format.md.
   */
  consistency?: 'application' | 'crash';
  /**
   * The chunk list, once the data is in packs. null while a deferred snapshot is staged.
   * Recipe names carry a random suffix (recipes/<id>-<8 hex>.recipe): process and prune
   * write a new recipe and then switch the manifest to it atomically, never overwrite one.
   */
  recipe: { name: string; bytes: number; blake3: string } | null;
  /** A deferred snapshot's raw bytes (staging/<id>.raw) until process moves them into packs; else null. */
  staging: { name: string; bytes: number } | null;
  /** What this backup added to the store (for a deferred snapshot: what process added). */
  ingest: { newChunks: number; newBytes: number; storedBytes: number; seconds: number };
}

export function recipeName(id: string): string {
  return `recipes/${id}-${randomBytes(4).toString('hex')}.recipe`;
}

export function stagingName(id: string): string {
  return `staging/${id}.raw`;
}

/** Target names: 1–128 of [A-Za-z0-9._-], not only dots (they become parts of object names and URLs). */
export function validateTargetName(target: unknown): string {
  if (typeof target !== 'string' || target.length === 0) throw badArgument('target name is required');
  if (target.length > 128) throw badArgument(`target name is ${target.length} characters long; the limit is 128`);
  if (!/^[A-Za-z0-9._-]+$/.test(target)) {
    throw badArgument(`target name ${JSON.stringify(target)} may contain only letters, digits, '.', '_' and '-'`);
  }
  if (/^\.+$/.test(target)) throw badArgument(`target name ${JSON.stringify(target)} cannot be only dots`);
  return target;
}

export function validatePolicy(policy: unknown): DedupePolicy {
  if (typeof policy !== 'string' || !POLICIES.includes(policy as DedupePolicy)) {
    throw badArgument(`policy ${JSON.stringify(policy)} is not one of ${POLICIES.join(', ')}`);
  }
  return policy as DedupePolicy;
}

export function manifestName(id: string): string {
  return `snapshots/${id}.json`;
}

/** Writes a new snapshot's manifest: the commit point of a backup (create-only). */
export async function writeManifest(backend: Backend, m: SnapshotManifest): Promise<void> {
  await backend.put(manifestName(m.id), sealJson({ ...m }), { exclusive: true });
}

/** Replaces an existing manifest atomically (process, prune): readers see the old or the new one. */
export async function replaceManifest(backend: Backend, m: SnapshotManifest): Promise<void> {
  await backend.put(manifestName(m.id), sealJson({ ...m }));
}

export async function readManifest(backend: Backend, id: string): Promise<SnapshotManifest> {
  let bytes: Buffer;
  try {
    bytes = await backend.get(manifestName(id));
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`);
    throw err;
  }
  const body = openSealedJson(bytes, `snapshot ${id}`) as unknown as SnapshotManifest;
  if (!READABLE_VERSIONS.includes(body.version)) {
    throw new ChunkyardError('FORMAT_UNSUPPORTED', `snapshot ${id} has manifest version ${String(body.version)}; this build reads ${READABLE_VERSIONS.join(' and ')}`);
  }
  if (body.id !== id) throw new ChunkyardError('CORRUPT', `snapshot file ${manifestName(id)} names itself ${body.id}`);
  const bad = fieldProblem(body);
  if (bad) throw new ChunkyardError('CORRUPT', `snapshot ${id}: ${bad}`);
  if (body.version === 1) {
    // Version 1 had no labels: read it as the version-2 manifest it would be, so that a
    // rewrite (process, prune) writes version 2 with the labels empty.
    return { ...body, version: MANIFEST_VERSION, host: null, tags: [], metadata: {} };
  }
  return body;
}

const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const amount = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What is wrong with the fields of a manifest that passed its checksum, or undefined: a
 * manifest holds only the types docs/format.md gives it, or it is damage (CORRUPT), never
 * read field by field until something throws a TypeError.
 */
function fieldProblem(m: SnapshotManifest): string | undefined {
  const f = m as unknown as Record<string, unknown>;
  if (typeof f['target'] !== 'string') return 'target is not a name';
  if (typeof f['time'] !== 'string' || Number.isNaN(Date.parse(f['time']))) return 'time is not a time';
  if (!count(f['logicalBytes']) || !count(f['chunks'])) return 'logicalBytes or chunks is not a count';
  if (!POLICIES.includes(f['policy'] as DedupePolicy)) return 'policy is not a dedupe policy';
  const recipe = f['recipe'];
  if (recipe !== null && !(isObject(recipe) && typeof recipe['name'] === 'string' && count(recipe['bytes']) && typeof recipe['blake3'] === 'string')) return 'recipe is malformed';
  const staging = f['staging'];
  if (staging !== null && !(isObject(staging) && typeof staging['name'] === 'string' && count(staging['bytes']))) return 'staging is malformed';
  const ingest = f['ingest'];
  if (!isObject(ingest) || !['newChunks', 'newBytes', 'storedBytes', 'seconds'].every((k) => amount(ingest[k]))) return 'ingest is malformed';
  if (f['consistency'] !== undefined && f['consistency'] !== 'application' && f['consistency'] !== 'crash') return 'consistency is neither "application" nor "crash"';
  if (m.version === 1) return undefined;
  if (f['host'] !== null && typeof f['host'] !== 'string') return 'host is not a name';
  if (!Array.isArray(f['tags']) || !f['tags'].every((t) => typeof t === 'string')) return 'tags is not a list of labels';
  const metadata = f['metadata'];
  if (!isObject(metadata) || !Object.values(metadata).every((v) => typeof v === 'string')) return 'metadata is not a map of labels';
  return undefined;
}

/** One manifest of readManifests: the manifest, or the error reading it gave. */
export type ManifestRead = { id: string; manifest: SnapshotManifest; error?: undefined } | { id: string; manifest?: undefined; error: unknown };

/**
 * Manifests read ahead, at most this many at once: a listing, prune, check or a backup's
 * parent lookup reads every manifest, and one at a time that is one backend round trip per
 * snapshot (~0.5 ms each on a local disk, a GET each on S3).
 */
export const MANIFEST_READS_IN_FLIGHT = 8;

/**
 * The manifests of `ids`, yielded in the order of `ids`, read `inFlight` at a time (memory:
 * that many manifests; util/async.ts mapAhead). Each read's outcome is yielded as it is, a
 * failure included, for the caller to judge as it would a single readManifest (forgotten
 * meanwhile, damaged).
 */
export async function* readManifests(backend: Backend, ids: readonly string[], inFlight = MANIFEST_READS_IN_FLIGHT): AsyncGenerator<ManifestRead> {
  let i = 0;
  for await (const r of mapAhead(ids, inFlight, (id) => readManifest(backend, id))) {
    const id = ids[i++]!;
    yield r.ok ? { id, manifest: r.value } : { id, error: r.error };
  }
}

/** Every snapshot id in the store (from object names; no manifest is read). */
export async function listSnapshotIds(backend: Backend): Promise<string[]> {
  const ids: string[] = [];
  for await (const o of backend.list('snapshots/')) {
    const m = /^snapshots\/([0-9a-f]{16})\.json$/.exec(o.name);
    if (m) ids.push(m[1]);
  }
  return ids;
}
