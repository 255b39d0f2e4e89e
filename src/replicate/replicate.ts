/**
 * Replication without re-inflation: copies snapshots from one store to one or more others,
 * sending only the chunks each destination lacks, in their stored form (same codec, same
 * stored bytes: never decompressed and recompressed), then each recipe (rewritten with the
 * destination's locations) and the manifest last. docs/operations.md, "Replication".
 *
 * A destination is written by an ordinary writer session (Store.openReplicaWriter), so its
 * own backups and prune run beside a replication: chunks found at the destination come from
 * its fingerprint index (a cache, every location confirmed by its pack's table, condemned
 * packs excluded); copied chunks go into new packs whose table objects are written before
 * the manifest; nothing at a destination is ever deleted but this run's own unfinished recipe.
 *
 * Resumable: a run that stops (kill -9, a lost connection) leaves sealed packs at the
 * destination; the next run's have/want finds their chunks and sends only the rest.
 *
 * Several destinations in one run: each source chunk that any destination lacks is read
 * (and verified) once, then appended to every destination that lacks it.
 */
import { ChunkyardError, badArgument } from '../errors.js';
import { CompressionPool } from '../compress/pool.js';
import { fpKey } from '../fingerprints/fingerprint-index.js';
import type { ChunkLocation } from '../pack/format.js';
import { readVerified, type ChunkRef, type VerifyJob } from '../maintenance/verify.js';
import { RecipeReader, type RecipeEntry } from '../snapshot/recipe.js';
import { MANIFEST_VERSION, manifestName, readManifest, readManifests, recipeName, writeManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { packObjectName } from '../util/ids.js';
import { Store, chunkSealing, type StoreLocation, type ReplicaWriter } from '../store/store.js';
import type { SnapshotInfo } from '../snapshot/info.js';
import type { KeyOptions } from '../crypto/secret.js';
import type { InflightChunk, OpenPack } from '../store/chunk-sink.js';
import type { StoreConfig } from '../store/config.js';
import { RateLimiter } from './rate-limit.js';
import { DEFAULT_PARENT_WINDOW_BYTES, DEFAULT_PARENT_WINDOW_ENTRIES, ParentWindow, type KnownChunk } from './parent-window.js';
import { CODEC_DELTA } from '../pack/format.js';
import { deltaBaseFingerprint } from '../delta/blob.js';
import { sketchObjectName } from '../delta/sketches.js';
import { recipeVersionFor } from '../delta/store-hooks.js';
import { CryptBackend } from '../crypto/crypt-backend.js';
import type { Backend } from '../backend/types.js';
import { TieredBackend } from '../tier/cold.js';
import { addFeature, hasFeature } from '../store/config.js';
import { ChunkClient, type DaemonChunker, type OpenCommit, type StoredChunk, pushChunked } from '../daemon/chunk-client.js';
import { fetchSnapshot } from '../daemon/client.js';
import { createHash } from 'node:crypto';

/** A daemon destination (http(s):// URL): the chunk protocol of docs/daemon.md. */
interface Remote {
  url: string;
  client: ChunkClient;
  info: DaemonChunker;
  report: ReplicateDestinationReport;
  rechunk?: boolean;
}

/** A daemon's state while one snapshot is copied. */
interface RemoteRun {
  remote: Remote;
  commit: OpenCommit;
  target?: string;
  batch: StoredChunk[];
  batchBytes: number;
}

/** Chunk data per upload request to a daemon. */
const REMOTE_UPLOAD_BYTES = 4 << 20;

async function flushRemote(r: RemoteRun): Promise<void> {
  if (r.batch.length === 0) return;
  await r.remote.client.upload(r.target!, r.batch);
  r.batch = [];
  r.batchBytes = 0;
}

/** A rechunked copy at a daemon has a new id and is not looked for: a repeated push sends only what the daemon lacks. */
async function remoteHasReplicaOf(_r: Remote, _src: Store, _m: SnapshotManifest): Promise<boolean> {
  return false;
}

/** --rechunk to a daemon: the source's bytes pushed with the daemon's chunker (only missing chunks sent). */
async function rechunkRemote(src: Store, r: Remote, m: SnapshotManifest, report: ReplicateReport, options: ReplicateOptions): Promise<void> {
  const stream = await src.restore(m.id, { signal: options.signal });
  const p = await pushChunked(r.url, stream, { target: m.target, token: options.token ?? process.env['CHUNKYARD_TOKEN'], host: m.host ?? undefined, tags: m.tags, metadata: { ...m.metadata, [REPLICA_OF_KEY]: `${src.config.id}:${m.id}` }, limitUpload: options.limitUpload, signal: options.signal });
  r.report.replicated.push(p.snapshot.id);
  r.report.chunksSent += p.chunksSent;
  r.report.bytesSent += p.bytesSent;
  r.report.chunksSkipped += p.chunksSkipped;
  r.report.bytesSkipped += p.bytesSkipped;
  report.sourceBytesRead += m.logicalBytes;
}

/** A daemon's copy restored over HTTP (the daemon checks every chunk) and hashed against the source's. */
async function verifyRemote(src: Store, r: Remote, m: SnapshotManifest, token: string | undefined): Promise<void> {
  const hash = async (s: AsyncIterable<Uint8Array>) => {
    const h = createHash('sha256');
    let n = 0;
    for await (const c of s) {
      h.update(c);
      n += c.length;
    }
    return `${n}:${h.digest('hex')}`;
  };
  const theirs = await hash(await fetchSnapshot(r.url, m.id, { token, by: 'id' }));
  const ours = await hash(await src.restore(m.id));
  if (theirs !== ours) throw new ChunkyardError('CORRUPT', `snapshot ${m.id} at ${r.url} does not restore to the source's bytes`);
}


export interface ReplicateOptions {
  /** Only snapshots of these targets (default: all). */
  targets?: string[];
  /** Only these snapshots: ids or unique prefixes of at least 4 hex digits (default: all). */
  snapshots?: string[];
  /**
   * After copying, prove every selected snapshot at each destination: the same chunk list
   * (fingerprints and lengths, from both recipes) as the source. Reads recipes only.
   */
  verify?: boolean;
  /** With verify: also restore each destination snapshot (every chunk read and checked). */
  readData?: boolean;
  /**
   * Stores with different chunker parameters share no chunks: refused (CHUNKER_MISMATCH)
   * unless this is set, when each snapshot is restored from the source and backed up anew at
   * the destination (new snapshot ids; every byte crosses).
   */
  rechunk?: boolean;
  /**
   * Incremental copies: chunks of the destination's parent snapshot (the latest earlier
   * snapshot of the same target it holds) within this many logical bytes of the position
   * being copied are taken as present without asking (default 1 GiB; 0: ask for every chunk).
   */
  parentWindowBytes?: number;
  /** At most this many parent entries held per destination (default 262144, ~50 MiB). */
  parentWindowEntries?: number;
  /** Bytes per second, at most, of chunk data written to the destinations (all together). */
  limitUpload?: number;
  /**
   * The secret of an encrypted source when it differs from the destinations' (which come from
   * the usual options and environment): stores that share key material have key slots of
   * their own. Default: the same as the destinations'.
   */
  sourceKeys?: KeyOptions;
  /** S3 endpoint for s3:// locations. */
  s3Endpoint?: string;
  /** Bearer token for http(s):// destinations (a daemon; default: CHUNKYARD_TOKEN). */
  token?: string;
  signal?: AbortSignal;
  onProgress?: (p: ReplicateProgress) => void;
}

export interface ReplicateProgress {
  snapshot: string;
  snapshotsDone: number;
  snapshots: number;
  /** Logical bytes of the current snapshot walked so far, and its size. */
  bytes: number;
  snapshotBytes: number;
  bytesSent: number;
  bytesSkipped: number;
}

/** Per destination. */
export interface ReplicateDestinationReport {
  location: string;
  /** Snapshots written here by this run. */
  replicated: string[];
  /** Selected snapshots the destination already had (by id): nothing sent. */
  present: string[];
  /** Chunks (and their stored bytes) sent: what the destination lacked. */
  chunksSent: number;
  bytesSent: number;
  /** Recipe entries whose chunk the destination already held (or received earlier in this run). */
  chunksSkipped: number;
  bytesSkipped: number;
  /** Recipe entries taken from the destination's parent snapshot without asking (incremental copies). */
  chunksKnown: number;
  /** Recipe entries looked up at the destination (have/want). */
  chunksAsked: number;
  /** Features this run added to the destination's config (e.g. "delta" for a delta source). */
  featuresAdded: string[];
  /** With verify: snapshots proven identical (and, with readData, restored). */
  verified?: string[];
}

export interface ReplicateReport {
  source: string;
  /** Snapshots written at destinations by this run (counted once per destination). */
  snapshotsReplicated: number;
  /** Selected snapshots still staged (deferred, not processed) at the source: not replicated. */
  staged: string[];
  chunksSent: number;
  bytesSent: number;
  chunksSkipped: number;
  bytesSkipped: number;
  /** Reads of source packs, and the bytes they read (each chunk any destination lacks is read once). */
  sourceReads: number;
  sourceBytesRead: number;
  /** Set with rechunk when the stores' chunkers differ: restored and backed up anew. */
  rechunked: boolean;
  seconds: number;
  destinations: ReplicateDestinationReport[];
}

/** A source or a destination: a location, a Backend, or an open Store (left open). */
export type ReplicaLocation = StoreLocation | Store;

/** Recipe entries walked per step (whole seek blocks): bounds memory per snapshot. */
const BLOCK_ENTRIES = 4096;
/** Source reads in flight (each up to MAX_READ_BYTES, 8 MiB). */
const READ_CONCURRENCY = 4;

/**
 * Copies the selected snapshots of `source` to every destination. Refuses (CHUNKER_MISMATCH)
 * before writing anything when a destination's chunker differs, unless `rechunk`.
 */
export async function replicate(source: ReplicaLocation, destinations: ReplicaLocation[], options: ReplicateOptions = {}): Promise<ReplicateReport> {
  if (!Array.isArray(destinations) || destinations.length === 0) throw badArgument('replicate needs at least one destination');
  if (options.limitUpload !== undefined && !(Number.isFinite(options.limitUpload) && options.limitUpload > 0)) throw badArgument(`limitUpload = ${String(options.limitUpload)}: must be a positive number of bytes per second`);
  const started = Date.now();
  const opened: Store[] = [];
  const open = async (l: ReplicaLocation, readOnly: boolean, keys: KeyOptions = {}): Promise<Store> => {
    if (l instanceof Store) return l;
    const s = await Store.open(l, { readOnly, s3Endpoint: options.s3Endpoint, purpose: 'replicate', ...keys });
    opened.push(s);
    return s;
  };
  let pool: CompressionPool | undefined;
  let reading: { end(): Promise<void> } | undefined;
  try {
    const src = await open(source, true, options.sourceKeys);
    // Announced before any manifest is read: a prune at the source deletes nothing it
    // condemns while this run may still read it (Store.announceReader; best effort).
    reading = await src.announceReader('replicate (source)');
    const dsts: Store[] = [];
    const remotes: Remote[] = [];
    const limiter = options.limitUpload ? new RateLimiter(options.limitUpload) : undefined;
    for (const d of destinations) {
      if (typeof d === 'string' && /^https?:\/\//i.test(d)) {
        const client = new ChunkClient(d, options.token ?? process.env['CHUNKYARD_TOKEN'], options.signal, limiter);
        const info = await client.chunker();
        remotes.push({ url: d, client, info, report: { location: d, replicated: [], present: [], chunksSent: 0, bytesSent: 0, chunksSkipped: 0, bytesSkipped: 0, chunksKnown: 0, chunksAsked: 0, featuresAdded: [] } });
      } else dsts.push(await open(d, false));
    }
    for (const o of [options.parentWindowBytes, options.parentWindowEntries]) {
      if (o !== undefined && !(Number.isSafeInteger(o) && o >= 0)) throw badArgument(`parent window ${String(o)}: must be a whole number, 0 or more`);
    }
    // Delta chunks (codec 3) are copied as they are, with their recipes' base entries; a
    // destination store must know the "delta" feature (added here to a local one that lacks
    // it, and reported). The daemon's chunk protocol carries no base entries: refused.
    const deltaSource = hasFeature(src.config, 'delta');
    if (deltaSource) {
      for (const r of remotes) throw new ChunkyardError('FEATURE_MISMATCH', `${r.url}: ${src.location} uses delta compression (the "delta" feature) and a daemon's chunk protocol does not carry delta base entries. Nothing was written; replicate to the daemon's store directly (a path or s3:// location), or restore and push`);
    }
    // Encrypted stores: sealed chunks are copied as they are between stores that share key
    // material (the same key id: `init --encryption --keys-from`); anything else is refused
    // before anything is written. A daemon's chunk protocol does not carry sealed chunks.
    const encrypted = (features: readonly string[] | undefined) => (features ?? []).includes('encryption');
    const srcKey = src.config.encryption?.keyId;
    for (const d of dsts) {
      if (!encrypted(src.config.features) && !encrypted(d.config.features)) continue;
      const dstKey = d.config.encryption?.keyId;
      if (encrypted(src.config.features) && encrypted(d.config.features) && srcKey !== undefined && srcKey === dstKey) continue;
      const why = !encrypted(src.config.features) ? `${src.location} is not encrypted and ${d.location} is`
        : !encrypted(d.config.features) ? `${src.location} is encrypted and ${d.location} is not (its chunks would be stored in the clear there)`
        : `the two stores do not share key material (key ids ${srcKey} and ${dstKey}), so sealed chunks of one cannot be opened by the other`;
      throw new ChunkyardError('KEY_MISMATCH', `${d.location}: replication refused: ${why}. Nothing was written. Create the destination with \`chunkyard init DST --encryption --keys-from SRC\` to replicate sealed chunks as they are, or restore and back up instead`);
    }
    for (const r of remotes) {
      if (!encrypted(src.config.features) && !encrypted(r.info.features)) continue;
      throw new ChunkyardError('KEY_MISMATCH', `${r.url}: replication of encrypted stores to a daemon is refused (its chunk protocol does not carry sealed chunks). Nothing was written; replicate to the daemon's store directly (a path or s3:// location) created with --keys-from`);
    }
    for (const r of remotes) {
      const mismatch = chunkerMismatch(src.config, { ...src.config, chunker: r.info.chunker });
      const why = featureMismatch(src.config.features ?? [], r.info.features);
      if (why) throw new ChunkyardError('FEATURE_MISMATCH', `${r.url}: ${why}`);
      if (mismatch !== undefined) {
        if (!options.rechunk) throw new ChunkyardError('CHUNKER_MISMATCH', `${r.url} chunks differently from ${src.location} (${mismatch}): the stores share no chunks. Nothing was written; use --rechunk to restore each snapshot and push it anew there (only chunks it lacks are sent)`);
        r.rechunk = true;
      }
    }
    const seen = new Set<string>();
    for (const d of dsts) {
      if (d.config.id === src.config.id) throw badArgument(`${d.location} is the source store itself`);
      if (seen.has(d.config.id)) throw badArgument(`${d.location} is named twice as a destination`);
      seen.add(d.config.id);
    }
    const mismatched = dsts.filter((d) => chunkerMismatch(src.config, d.config) !== undefined);
    for (const d of dsts) {
      // "delta" is added to a local destination that lacks it (below), unless it is encrypted.
      const needs = (src.config.features ?? []).filter((f) => f !== 'delta' || hasFeature(d.config, 'encryption'));
      const why = featureMismatch(needs, d.config.features ?? []);
      if (why) throw new ChunkyardError('FEATURE_MISMATCH', `${d.location}: ${why}; the source's chunks cannot be copied as they are stored`);
    }
    if (mismatched.length > 0 && !options.rechunk) {
      const d = mismatched[0]!;
      throw new ChunkyardError('CHUNKER_MISMATCH', `${d.location} chunks differently from ${src.location} (${chunkerMismatch(src.config, d.config)}): the stores share no chunks. Nothing was written; use --rechunk to restore each snapshot and back it up anew there (every byte is sent)`);
    }
    if (deltaSource) {
      for (const d of dsts) {
        if (hasFeature(d.config, 'delta')) continue;
        if (hasFeature(d.config, 'encryption')) throw new ChunkyardError('FEATURE_MISMATCH', `${d.location}: ${src.location} uses delta compression and ${d.location} is encrypted (delta is not available in encrypted stores). Nothing was written`);
      }
    }
    const all = await src.snapshots();
    const selected = await selectSnapshots(src, all, options);
    const report: ReplicateReport = {
      source: src.location, snapshotsReplicated: 0, staged: selected.filter((m) => m.recipe === null).map((m) => m.id),
      chunksSent: 0, bytesSent: 0, chunksSkipped: 0, bytesSkipped: 0, sourceReads: 0, sourceBytesRead: 0, rechunked: mismatched.length > 0 || remotes.some((r) => r.rechunk), seconds: 0,
      destinations: dsts.map((d) => ({ location: d.location, replicated: [], present: [], chunksSent: 0, bytesSent: 0, chunksSkipped: 0, bytesSkipped: 0, chunksKnown: 0, chunksAsked: 0, featuresAdded: [] })),
    };
    const ready = selected.filter((m) => m.recipe !== null);
    if (deltaSource && ready.length > 0) {
      // Said loudly (featuresAdded in the report; the CLI prints it): builds that do not know
      // "delta" refuse the destination from now on.
      for (const [i, d] of dsts.entries()) {
        if (hasFeature(d.config, 'delta')) continue;
        (d as { config: StoreConfig }).config = await addFeature(d.backend, d.config, 'delta');
        report.destinations[i]!.featuresAdded.push('delta');
      }
    }
    const parentsOf = (m: SnapshotManifest): string[] => all.filter((s) => s.target === m.target && s.id !== m.id && s.time <= m.time).sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0)).map((s) => s.id);
    // Sealed chunks are opened on the workers to be checked, and copied still sealed.
    pool = new CompressionPool({ sealing: chunkSealing(src.backend) });
    for (const [n, listed] of ready.entries()) {
      let m = listed;
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'replicate cancelled', { cause: options.signal.reason });
      const todo: number[] = [];
      for (const [i, d] of dsts.entries()) {
        const has = mismatched.includes(d) ? await hasReplicaOf(d, src, m.id) : (await d.backend.stat(manifestName(m.id))) !== undefined;
        if (has) report.destinations[i]!.present.push(m.id);
        else todo.push(i);
      }
      const remoteTodo: Remote[] = [];
      for (const r of remotes) {
        const has = r.rechunk ? await remoteHasReplicaOf(r, src, m) : await r.client.hasSnapshot(m.id);
        if (has) r.report.present.push(m.id);
        else remoteTodo.push(r);
      }
      if (todo.length === 0 && remoteTodo.length === 0) continue;
      // The manifests were read at the start. By now this one may be forgotten, or name a new
      // recipe (tier or prune rewrote it; the old one stays while this run's reader session
      // lasts, but a source that could not be written has none). So it is read again right
      // before its copy.
      const now = await readManifest(src.backend, m.id).catch((err: unknown) => {
        if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') return undefined;
        throw err;
      });
      if (now === undefined || now.recipe === null) continue; // forgotten meanwhile: not copied
      m = now;
      const copyTo = todo.filter((i) => !mismatched.includes(dsts[i]!));
      const rechunkTo = todo.filter((i) => mismatched.includes(dsts[i]!));
      const remoteCopy = remoteTodo.filter((r) => !r.rechunk);
      if (copyTo.length > 0 || remoteCopy.length > 0) {
        // Chunks in archive packs (the "archive-tier" feature) are read from the archive. The
        // cold packs are listed after the manifest was read: a recipe names an archive pack
        // only once its cold table exists, so every one this recipe names is listed.
        const srcReads = await src.packReads();
        try {
          await copySnapshot(src, srcReads, m, parentsOf(m), copyTo.map((i) => ({ store: dsts[i]!, report: report.destinations[i]! })), remoteCopy, report, pool, limiter, options, n, ready.length);
        } finally {
          if (srcReads instanceof TieredBackend) await srcReads.close().catch(() => {}); // the archive only
        }
      }
      for (const i of rechunkTo) await rechunkSnapshot(src, dsts[i]!, m, report.destinations[i]!, report, options);
      for (const r of remoteTodo.filter((x) => x.rechunk)) await rechunkRemote(src, r, m, report, options);
    }
    if (options.verify) {
      for (const [i, d] of dsts.entries()) {
        const r = report.destinations[i]!;
        r.verified = [];
        if (mismatched.includes(d)) continue; // rechunked copies are new snapshots: restore them to compare
        for (const m of ready) {
          await verifyReplica(src, d, m, options.readData === true);
          r.verified.push(m.id);
        }
      }
    }
    if (options.verify) {
      // A daemon proves its copy by restoring it (every chunk checked there): the bytes are
      // hashed here against a restore of the source. With readData only (it reads every byte).
      for (const r of remotes) {
        r.report.verified = [];
        if (!options.readData || r.rechunk) continue;
        for (const m of ready) {
          await verifyRemote(src, r, m, options.token ?? process.env['CHUNKYARD_TOKEN']);
          r.report.verified.push(m.id);
        }
      }
    }
    report.destinations.push(...remotes.map((r) => r.report));
    for (const r of report.destinations) {
      report.snapshotsReplicated += r.replicated.length;
      report.chunksSent += r.chunksSent;
      report.bytesSent += r.bytesSent;
      report.chunksSkipped += r.chunksSkipped;
      report.bytesSkipped += r.bytesSkipped;
    }
    report.seconds = (Date.now() - started) / 1000;
    return report;
  } finally {
    await reading?.end().catch(() => {});
    await pool?.close().catch(() => {});
    for (const s of opened.reverse()) await s.close().catch(() => {});
  }
}

/**
 * Store features that decide what a stored chunk is: a destination must have every one the
 * source has (its chunks may use them: delta chunks, sealed chunks), and an encrypted
 * destination takes only sealed chunks (plain ones would be stored in the clear there).
 */
const SYMMETRIC_FEATURES = ['encryption'];
/**
 * Features of the source that no copied chunk carries: "archive-tier" says where some packs
 * live (their chunks are read from the archive and arrive as ordinary packs), so a
 * destination needs no archive of its own.
 */
const SOURCE_ONLY_FEATURES = ['archive-tier'];

export function featureMismatch(src: readonly string[], dst: readonly string[]): string | undefined {
  const missing = src.filter((f) => !dst.includes(f) && !SOURCE_ONLY_FEATURES.includes(f));
  if (missing.length > 0) return `it lacks the store feature(s) ${missing.join(', ')} that the source uses`;
  const extra = dst.filter((f) => SYMMETRIC_FEATURES.includes(f) && !src.includes(f));
  if (extra.length > 0) return `it uses ${extra.join(', ')} and the source does not`;
  return undefined;
}

/** Undefined when two configs cut and fingerprint streams identically, else what differs. */
export function chunkerMismatch(a: StoreConfig, b: StoreConfig): string | undefined {
  const diffs: string[] = [];
  for (const k of ['version', 'minSize', 'avgSize', 'maxSize', 'normalization'] as const) {
    if (a.chunker[k] !== b.chunker[k]) diffs.push(`${k} ${a.chunker[k]} vs ${b.chunker[k]}`);
  }
  return diffs.length > 0 ? diffs.join(', ') : undefined;
}

async function selectSnapshots(src: Store, all: readonly SnapshotInfo[], options: ReplicateOptions): Promise<SnapshotManifest[]> {
  let infos = [...all];
  if (options.targets?.length) {
    const t = new Set(options.targets);
    infos = infos.filter((s) => t.has(s.target));
  }
  if (options.snapshots?.length) {
    const picked = new Set<string>();
    for (const want of options.snapshots) {
      if (!/^[0-9a-f]{4,16}$/.test(want)) throw badArgument(`snapshot ${JSON.stringify(want)}: give 4 to 16 lowercase hex digits of an id`);
      const hits = infos.filter((s) => s.id.startsWith(want));
      if (hits.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot ${want} in ${src.location}${options.targets?.length ? ' among the targets given' : ''}`);
      if (hits.length > 1) throw badArgument(`snapshot prefix ${want} is ambiguous (${hits.map((h) => h.id).join(', ')})`);
      picked.add(hits[0]!.id);
    }
    infos = infos.filter((s) => picked.has(s.id));
  }
  const out: SnapshotManifest[] = [];
  for await (const { manifest, error } of readManifests(src.backend, infos.map((s) => s.id))) {
    try {
      if (error !== undefined) throw error;
      out.push(manifest!);
    } catch (err) {
      if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue; // forgotten meanwhile
      throw err;
    }
  }
  return out;
}

/** One destination's state while one snapshot is copied. */
interface DstRun {
  store: Store;
  report: ReplicateDestinationReport;
  writer: ReplicaWriter;
  recipe: import('../snapshot/recipe.js').RecipeWriter | undefined;
  pack: OpenPack | undefined;
  /** The previous pack's seal: at most one seal in flight per destination. */
  sealing: Promise<void> | undefined;
  /** Packs and others' in-flight chunks this snapshot's recipe needs durable before the manifest. */
  waits: Promise<void>[];
  /** Claims of this step not yet placed (released if the step fails), with the place each gives and, for a delta, its base's. */
  claims: Map<string, { fp: Buffer; claim: InflightChunk; place: Place; base?: Place; baseFp?: Buffer }>;
  /** The destination's parent snapshot, streamed: chunks known present there (parent-window.ts). */
  window: ParentWindow | undefined;
}

async function copySnapshot(
  src: Store,
  srcReads: Backend,
  m: SnapshotManifest,
  parents: string[],
  targets: { store: Store; report: ReplicateDestinationReport }[],
  remotes: Remote[],
  report: ReplicateReport,
  pool: CompressionPool,
  limiter: RateLimiter | undefined,
  options: ReplicateOptions,
  n: number,
  total: number,
): Promise<void> {
  const reader = await RecipeReader.open(src.backend, m.recipe!.name, { expect: m.recipe! });
  const runs: DstRun[] = [];
  const remoteRuns: RemoteRun[] = [];
  try {
    for (const t of targets) {
      const writer = await t.store.openReplicaWriter(`replicate (snapshot ${m.id} from ${src.location})`);
      runs.push({ store: t.store, report: t.report, writer, recipe: undefined, pack: undefined, sealing: undefined, waits: [], claims: new Map(), window: undefined });
    }
    const { RecipeWriter } = await import('../snapshot/recipe.js');
    for (const r of runs) {
      // After the writer's session started (parent-window.ts says why that order matters).
      r.window = await ParentWindow.open(r.writer.backend, r.writer.sink.index, parents, options.parentWindowBytes ?? DEFAULT_PARENT_WINDOW_BYTES, options.parentWindowEntries ?? DEFAULT_PARENT_WINDOW_ENTRIES);
      r.recipe = await RecipeWriter.create(r.writer.backend, recipeName(m.id), recipeVersionFor(r.store.config));
    }
    // A daemon's commit opens first: once it answers, its session protects what it said it has.
    for (const r of remotes) {
      remoteRuns.push({ remote: r, commit: await r.client.openCommit({ target: m.target, id: m.id, time: m.time, host: m.host, tags: m.tags, metadata: m.metadata }), target: m.target, batch: [], batchBytes: 0 });
    }
    let walked = 0;
    let sketch: Buffer | null | undefined;
    for await (const block of reader.entries(0, BLOCK_ENTRIES)) {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'replicate cancelled', { cause: options.signal.reason });
      await copyBlock(src, srcReads, block, runs, remoteRuns, report, pool, limiter);
      for (const e of block) walked += e.rawLength;
      options.onProgress?.({
        snapshot: m.id, snapshotsDone: n, snapshots: total, bytes: walked, snapshotBytes: m.logicalBytes,
        bytesSent: report.destinations.reduce((s, d) => s + d.bytesSent, 0), bytesSkipped: report.destinations.reduce((s, d) => s + d.bytesSkipped, 0),
      });
    }
    // Commit, per destination: packs durable, recipe durable, session current,
    // then the manifest (create-only: the commit).
    for (const r of runs) {
      if (r.pack && !r.pack.sealing && r.pack.writer.count > 0) r.waits.push(r.writer.sink.seal(r.pack));
      r.pack = undefined;
      await Promise.all(r.waits);
      const summary = await r.recipe!.commit();
      r.recipe = undefined;
      if (summary.logicalBytes !== m.logicalBytes || summary.entries !== m.chunks) {
        await r.writer.backend.delete(summary.name).catch(() => {});
        throw new ChunkyardError('CORRUPT', `snapshot ${m.id}: its recipe gave ${summary.entries} chunks of ${summary.logicalBytes} bytes, its manifest says ${m.chunks} of ${m.logicalBytes}`);
      }
      // A delta store's sketch object (one record per recipe entry, in recipe order: the same
      // order here) goes along, before the manifest: the destination's next backup of the
      // target seeds its similarity index from it. A hint: one that cannot be copied is skipped.
      if (sketch === undefined && hasFeature(src.config, 'delta')) sketch = await src.backend.get(sketchObjectName(m.id)).catch(() => null);
      if (sketch) await r.writer.backend.put(sketchObjectName(m.id), sketch).catch(() => {});
      const manifest: SnapshotManifest = { ...m, version: MANIFEST_VERSION, recipe: { name: summary.name, bytes: summary.bytes, blake3: summary.blake3 }, staging: null };
      try {
        await r.writer.session.assertCurrent(`snapshot ${m.id}`);
        await writeManifest(r.writer.backend, manifest);
      } catch (err) {
        await r.writer.backend.delete(summary.name).catch(() => {});
        if (err instanceof ChunkyardError && err.code === 'OBJECT_EXISTS') {
          r.report.present.push(m.id); // another replication committed it meanwhile
          continue;
        }
        throw err;
      }
      r.report.replicated.push(m.id);
    }
    for (const r of remoteRuns) {
      try {
        await r.commit.end();
      } catch (err) {
        if (err instanceof ChunkyardError && err.code === 'OBJECT_EXISTS') {
          r.remote.report.present.push(m.id);
          continue;
        }
        throw err;
      }
      r.remote.report.replicated.push(m.id);
    }
  } catch (err) {
    for (const r of remoteRuns) r.commit.abort();
    // What was copied stays useful: open packs are sealed (their chunks are found by the next
    // run), unplaced claims released, the unfinished recipe removed.
    for (const r of runs) {
      for (const c of r.claims.values()) r.writer.sink.release(c.fp, err);
      if (r.pack && !r.pack.sealing && r.pack.writer.count > 0) await r.writer.sink.seal(r.pack).catch(() => {});
      await r.recipe?.abort().catch(() => {});
    }
    throw err;
  } finally {
    for (const r of runs) {
      await Promise.allSettled(r.waits);
      await r.writer.end();
    }
  }
}

/** A destination's place for one output entry: known now, or once this step's sends are placed. */
type Place = KnownChunk | (() => Promise<KnownChunk>);

/** A source chunk to send: its stored form's location at the source, and who wants it. */
interface Wanted {
  ref: ChunkRef;
  dsts: number[];
  remote: number[];
}

/**
 * One step of recipe entries: have/want at every destination (except chunks the
 * destination's parent snapshot shows it holds), one verified read of each wanted source
 * chunk, appends to each destination that wants it (bases before deltas), then the recipe
 * entries (a delta entry with its base entry just before it).
 */
async function copyBlock(src: Store, srcReads: Backend, block: RecipeEntry[], runs: DstRun[], remoteRuns: RemoteRun[], report: ReplicateReport, pool: CompressionPool, limiter: RateLimiter | undefined): Promise<void> {
  const fps = block.map((e) => e.fingerprint);
  const outs = block.filter((e) => !e.base);
  const places: Place[][] = [];
  const wanted = new Map<string, Wanted>();
  const want = (e: ChunkLocation & { fingerprint: Buffer }): Wanted => {
    const k = fpKey(e.fingerprint);
    let w = wanted.get(k);
    if (!w) wanted.set(k, (w = { ref: { offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, codec: e.codec, fingerprint: e.fingerprint, packId: e.packId } as ChunkRef & { packId: Buffer }, dsts: [], remote: [] }));
    return w;
  };
  for (const [d, r] of remoteRuns.entries()) {
    const has: boolean[] = [];
    const batch = r.remote.info.limits.haveBatch;
    for (let i = 0; i < fps.length; i += batch) has.push(...(await r.remote.client.have(r.target!, fps.slice(i, i + batch))));
    const asked = new Set<string>();
    for (const [i, e] of block.entries()) {
      const k = fpKey(e.fingerprint);
      if (has[i] || asked.has(k)) {
        r.remote.report.chunksSkipped++;
        r.remote.report.bytesSkipped += e.storedLength;
        continue;
      }
      asked.add(k);
      want(e).remote.push(d);
    }
  }
  for (const [d, r] of runs.entries()) {
    const sink = r.writer.sink;
    if (r.window && outs.length > 0) await r.window.advance(outs[0]!.streamOffset);
    const known = outs.map((e) => r.window?.get(e.fingerprint));
    // What the window does not know is asked of the destination's index (a delta's base too).
    const ask: Buffer[] = [];
    const asking = new Set<string>();
    const addAsk = (fp: Buffer) => {
      const k = fpKey(fp);
      if (!asking.has(k)) {
        asking.add(k);
        ask.push(fp);
      }
    };
    for (const [i, e] of outs.entries()) {
      if (known[i]) continue;
      addAsk(e.fingerprint);
      if (e.deltaBase) addAsk(e.deltaBase.fingerprint);
    }
    const found = new Map<string, ChunkLocation>();
    if (ask.length > 0) {
      const res = await sink.index.lookupMany(ask);
      // A delta (codec 3) found by fingerprint is not taken: its base is not known there.
      for (const [i, fp] of ask.entries()) if (res[i] && res[i]!.codec !== CODEC_DELTA) found.set(fpKey(fp), res[i]!);
    }
    /** The destination's place for a chunk: found, ours in this step, another stream's in flight, or claimed and wanted. */
    const resolve = (e: ChunkLocation & { fingerprint: Buffer; deltaBase?: RecipeEntry }, asBase: boolean): Place => {
      const k = fpKey(e.fingerprint);
      const f = found.get(k);
      if (f) return { loc: f };
      const mine = r.claims.get(k);
      if (mine) return mine.place;
      const inflight = sink.findInflight(e.fingerprint);
      if (inflight) {
        // Another stream of this process (or an earlier step of this run) holds it: its pack
        // must be durable before this snapshot commits.
        r.waits.push(inflight.durable.promise);
        return async () => {
          const loc = await inflight.location.promise;
          if (loc.codec !== CODEC_DELTA) return { loc };
          if (asBase || !inflight.deltaBase) throw new ChunkyardError('UNAVAILABLE', `chunk ${e.fingerprint.toString('hex')} is being stored as a delta by another stream of this process; run replicate again`);
          return { loc, base: { fingerprint: inflight.deltaBase.fingerprint, loc: inflight.deltaBase.location } };
        };
      }
      const claim = sink.claim(e.fingerprint)!;
      r.waits.push(claim.durable.promise);
      const basePlace = e.codec === CODEC_DELTA ? resolve(e.deltaBase!, true) : undefined;
      const place: Place = basePlace
        ? async () => {
            const b = await settle(basePlace);
            return { loc: await claim.location.promise, base: { fingerprint: e.deltaBase!.fingerprint, loc: b.loc } };
          }
        : async () => ({ loc: await claim.location.promise });
      r.claims.set(k, { fp: e.fingerprint, claim, place, base: basePlace, baseFp: e.deltaBase?.fingerprint });
      want(e).dsts.push(d);
      return place;
    };
    const row: Place[] = [];
    for (const [i, e] of outs.entries()) {
      const kc = known[i];
      if (kc) {
        row.push(kc);
        r.report.chunksKnown++;
        r.report.chunksSkipped++;
        r.report.bytesSkipped += e.storedLength;
        continue;
      }
      r.report.chunksAsked++;
      const k = fpKey(e.fingerprint);
      const f = found.get(k);
      const mine = r.claims.get(k);
      if (f || mine || sink.findInflight(e.fingerprint)) {
        r.report.chunksSkipped++;
        r.report.bytesSkipped += e.storedLength;
      }
      row.push(resolve(e, false));
    }
    places.push(row);
  }
  if (wanted.size > 0) {
    // Bases (and every whole chunk) first, then deltas: a delta is appended after its base.
    const all = [...wanted.values()];
    await sendWanted(srcReads, all.filter((w) => w.ref.codec !== CODEC_DELTA), runs, remoteRuns, report, pool, limiter);
    await sendWanted(srcReads, all.filter((w) => w.ref.codec === CODEC_DELTA), runs, remoteRuns, report, pool, limiter);
  }
  // Each daemon: what it lacked is uploaded (durable when answered), then the step's
  // fingerprints go into its commit.
  for (const r of remoteRuns) {
    await flushRemote(r);
    await r.commit.write(Buffer.concat(fps));
  }
  for (const [d, r] of runs.entries()) {
    const row = places[d]!;
    for (const [i, e] of outs.entries()) {
      const p = row[i]!;
      const kc = typeof p === 'function' ? await p() : p;
      if (kc.loc.codec === CODEC_DELTA) {
        if (!kc.base) throw new ChunkyardError('CORRUPT', `chunk ${e.fingerprint.toString('hex')}: a delta at ${r.store.location} without a known base`);
        // A base is stored whole (depth 1). Only a source that stores one fingerprint both whole
        // and as a delta, met in one step, could lead here: refused rather than written wrong.
        if (kc.base.loc.codec === CODEC_DELTA) throw new ChunkyardError('UNAVAILABLE', `chunk ${kc.base.fingerprint.toString('hex')}, the base of ${e.fingerprint.toString('hex')}, is placed as a delta at ${r.store.location}; nothing of this snapshot was committed there: run replicate again`);
        await r.recipe!.add(kc.base.fingerprint, kc.base.loc, true);
      }
      await r.recipe!.add(e.fingerprint, kc.loc);
    }
    r.claims.clear();
  }
}

async function settle(p: Place): Promise<KnownChunk> {
  return typeof p === 'function' ? p() : p;
}

/** One verified read of each wanted source chunk (coalesced per pack), appended to every destination that wants it. */
async function sendWanted(srcReads: Backend, list: Wanted[], runs: DstRun[], remoteRuns: RemoteRun[], report: ReplicateReport, pool: CompressionPool, limiter: RateLimiter | undefined): Promise<void> {
  if (list.length === 0) return;
  const byPack = new Map<string, { refs: ChunkRef[]; want: Map<ChunkRef, Wanted> }>();
  for (const w of list) {
    const name = packObjectName((w.ref as ChunkRef & { packId: Buffer }).packId);
    let j = byPack.get(name);
    if (!j) byPack.set(name, (j = { refs: [], want: new Map() }));
    j.refs.push(w.ref);
    j.want.set(w.ref, w);
  }
  const jobs: VerifyJob<Map<ChunkRef, Wanted>>[] = [];
  for (const [packName, j] of byPack) {
    j.refs.sort((a, b) => a.offset - b.offset);
    jobs.push({ packName, refs: j.refs, tag: j.want });
  }
  for await (const read of readVerified(srcReads, pool, jobs, READ_CONCURRENCY)) {
    report.sourceReads++;
    report.sourceBytesRead += read.data.length;
    if (read.error) throw new ChunkyardError('CHUNK_NOT_FOUND', `source pack ${read.packName} is missing: ${read.error.message}`, { cause: read.error });
    if (read.bad.size > 0) {
      const [i, why] = read.bad.entries().next().value as [number, string];
      const ref = read.refs[i]!;
      throw new ChunkyardError('CHUNK_CORRUPT', `source chunk ${ref.fingerprint.toString('hex')} at ${read.packName} offset ${ref.offset}: ${why}; nothing of this snapshot was committed (run check and repair on the source)`);
    }
    for (const ref of read.refs) {
      const stored = read.data.subarray(ref.offset - read.start, ref.offset - read.start + ref.storedLength);
      const to = read.tag.get(ref)!;
      for (const d of to.dsts) {
        const r = runs[d]!;
        if (limiter) await limiter.take(stored.length);
        await appendStored(r, ref, stored, to.dsts.length + to.remote.length > 1);
        r.report.chunksSent++;
        r.report.bytesSent += stored.length;
      }
      for (const d of to.remote) {
        const r = remoteRuns[d]!;
        r.batch.push({ fingerprint: ref.fingerprint, rawLength: ref.rawLength, codec: ref.codec, stored: Buffer.from(stored) });
        r.batchBytes += stored.length;
        r.remote.report.chunksSent++;
        r.remote.report.bytesSent += stored.length;
        if (r.batchBytes >= REMOTE_UPLOAD_BYTES) await flushRemote(r);
      }
    }
  }
}

/** Appends one stored chunk, as it is, to the destination's open pack (a new one when full). */
async function appendStored(r: DstRun, ref: ChunkRef, stored: Uint8Array, shared: boolean): Promise<void> {
  const sink = r.writer.sink;
  const k = fpKey(ref.fingerprint);
  const c = r.claims.get(k)!;
  if (r.pack?.sealing) r.pack = undefined;
  if (!r.pack) r.pack = await sink.openPack();
  const pack = r.pack;
  if (ref.codec === CODEC_DELTA) {
    // Its base was appended (or found) before it: recorded for other streams that meet it in flight.
    const b = await settle(c.base!);
    const named = deltaBaseFingerprint(stored);
    if (!c.baseFp || !named.equals(c.baseFp)) {
      throw new ChunkyardError('CHUNK_CORRUPT', `source delta chunk ${ref.fingerprint.toString('hex')} names base ${named.toString('hex')}, its recipe's base entry is ${c.baseFp?.toString('hex')}; nothing of this snapshot was committed (run check on the source)`);
    }
    c.claim.deltaBase = { fingerprint: named, location: b.loc };
  }
  // The read buffer is fresh per read and only read from here on: one destination takes the
  // bytes as they are. Copied when several share them, or when the destination's backend may
  // transform what it is given (an encrypted store's).
  const bytes = shared || r.writer.backend instanceof CryptBackend ? Buffer.from(stored) : Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const offset = await pack.writer.append(ref.fingerprint, bytes, ref.rawLength, ref.codec as ChunkLocation['codec']);
  sink.placed(ref.fingerprint, c.claim, pack, { packId: pack.writer.packId, offset, storedLength: stored.length, rawLength: ref.rawLength, codec: ref.codec as ChunkLocation['codec'] });
  if (pack.writer.size >= sink.packSize) {
    await r.sealing;
    r.pack = undefined;
    r.sealing = sink.seal(pack);
    r.sealing.catch(() => {});
    r.waits.push(r.sealing);
  }
}

/**
 * Proves a destination's snapshot is the source's: same chunk list (fingerprint and length
 * of every entry, in order) from both recipes, each verified against its manifest; with
 * readData, a restore of the destination's copy (every chunk read and checked) too.
 */
export async function verifyReplica(src: Store, dst: Store, m: SnapshotManifest, readData: boolean): Promise<void> {
  const theirs = await readManifest(dst.backend, m.id);
  if (theirs.logicalBytes !== m.logicalBytes || theirs.chunks !== m.chunks || theirs.target !== m.target) {
    throw new ChunkyardError('CORRUPT', `snapshot ${m.id} at ${dst.location} differs from the source's (${theirs.chunks} chunks of ${theirs.logicalBytes} bytes, the source has ${m.chunks} of ${m.logicalBytes})`);
  }
  const a = (await RecipeReader.open(src.backend, m.recipe!.name, { expect: m.recipe! })).entries(0, BLOCK_ENTRIES)[Symbol.asyncIterator]();
  const b = (await RecipeReader.open(dst.backend, theirs.recipe!.name, { expect: theirs.recipe! })).entries(0, BLOCK_ENTRIES)[Symbol.asyncIterator]();
  let pendA: RecipeEntry[] = [];
  let pendB: RecipeEntry[] = [];
  let index = 0;
  for (;;) {
    if (pendA.length === 0) {
      const x = await a.next();
      if (!x.done) pendA = x.value;
    }
    if (pendB.length === 0) {
      const y = await b.next();
      if (!y.done) pendB = y.value;
    }
    if (pendA.length === 0 || pendB.length === 0) {
      if (pendA.length !== pendB.length) throw new ChunkyardError('CORRUPT', `snapshot ${m.id} at ${dst.location}: its recipe has a different number of chunks`);
      break;
    }
    const k = Math.min(pendA.length, pendB.length);
    for (let i = 0; i < k; i++, index++) {
      if (!pendA[i]!.fingerprint.equals(pendB[i]!.fingerprint) || pendA[i]!.rawLength !== pendB[i]!.rawLength) {
        throw new ChunkyardError('CORRUPT', `snapshot ${m.id} at ${dst.location}: chunk ${index} differs from the source's`);
      }
    }
    pendA = pendA.slice(k);
    pendB = pendB.slice(k);
  }
  if (readData) {
    let bytes = 0;
    const stream = await dst.restore(m.id);
    for await (const c of stream) bytes += (c as Buffer).length;
    if (bytes !== m.logicalBytes) throw new ChunkyardError('CORRUPT', `snapshot ${m.id} at ${dst.location} restored ${bytes} bytes, not ${m.logicalBytes}`);
  }
}

/** The metadata key a rechunked copy records its source by. */
export const REPLICA_OF_KEY = 'chunkyard.replica-of';

async function hasReplicaOf(dst: Store, src: Store, id: string): Promise<boolean> {
  const want = `${src.config.id}:${id}`;
  for (const s of await dst.snapshots()) if (s.metadata[REPLICA_OF_KEY] === want) return true;
  return false;
}

/** --rechunk: restore at the source, back up anew at the destination (every byte crosses). */
async function rechunkSnapshot(src: Store, dst: Store, m: SnapshotManifest, r: ReplicateDestinationReport, report: ReplicateReport, options: ReplicateOptions): Promise<void> {
  const stream = await src.restore(m.id, { signal: options.signal });
  const done = await dst.backup(stream, {
    target: m.target, host: m.host ?? undefined, tags: [...m.tags], metadata: { ...m.metadata, [REPLICA_OF_KEY]: `${src.config.id}:${m.id}` }, signal: options.signal,
  });
  r.replicated.push(done.id);
  r.chunksSent += done.newChunks ?? 0;
  r.bytesSent += done.storedBytes ?? 0;
  report.sourceBytesRead += m.logicalBytes;
}
