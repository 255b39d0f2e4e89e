/**
 * The Store: a chunkyard store in a local directory (the embedded default).
 *
 *   const store = await Store.open('/backups/store');
 *   const snap = await store.backup(fs.createReadStream('disk.img'), { target: 'disk' });
 *   (await store.restore(snap.id)).pipe(fs.createWriteStream('copy.img'));
 *   await store.close();
 *
 * A store opened for writing holds the writer lock and the fingerprint index; one opened
 * with `readOnly: true` takes no lock and can restore, list and report while a writer runs.
 */
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { ByteSource } from '../chunking/batcher.js';
import type { Backend } from '../backend/types.js';
import { openFsBackend } from '../backend/fs.js';
import { createChunker, getHasher, resolveChunkerParams } from '../chunking/index.js';
import type { EngineName } from '../chunking/types.js';
import { CompressionPool } from '../compress/pool.js';
import type { CompressionName } from '../compress/messages.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { FingerprintIndex, preloadLevel, readIndexSummary } from '../index/fingerprint-index.js';
import type { IndexStats } from '../index/types.js';
import { readPackTable } from '../pack/reader.js';
import { MANIFEST_VERSION, listSnapshotIds, readManifest, replaceManifest, stagingName, validatePolicy, validateTargetName, writeManifest, type DedupePolicy, type SnapshotManifest } from '../snapshot/manifest.js';
import { snapshotInfo, snapshotLabels, snapshotMatcher, type SnapshotFilter, type SnapshotInfo } from '../snapshot/info.js';
import { checkOptions } from './options.js';
import { abortableSink, abortableStream, type RestoreProgress } from './restore-control.js';
import { newSnapshotId } from '../util/ids.js';
import { initBlake3 } from '../util/blake3.js';
import { MAX_SLICE_BYTES, MIN_SLICE_BYTES, runIngest, type BackupProgress } from './backup.js';
import { dropStaged, readStaged, stageStream } from './staging.js';
import { effectivePolicy, readPolicies, setTargetPolicy, type PolicyFile, type TargetPolicy } from './policies.js';
import { ChunkSink } from './chunk-sink.js';
import { newConfig, readConfig, validateCompression, writeConfig, type StoreConfig } from './config.js';
import { acquireWriterLock, type WriterLock } from './lock.js';
import { fileSink, restoreInto, restoreStream, writableSink, type RestoreContext, type RestoreRange, type ZeroRuns } from './restore.js';
import { Gate } from '../util/gate.js';
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
// The maintenance commands load their modules when called: a backup or a restore, whose
// process start-up counts on small streams, does not pay for them.
import type { CheckOptions, CheckReport } from '../maintenance/check.js';
import type { ForgetOptions, ForgetReport } from '../maintenance/forget.js';
import type { PruneOptions, PruneReport } from '../maintenance/prune.js';
import type { RepairOptions, RepairReport } from '../maintenance/repair.js';
import type { Problem } from '../maintenance/problems.js';

export type { CheckOptions, CheckReport, ForgetOptions, ForgetReport, PruneOptions, PruneReport, RepairOptions, RepairReport, Problem };
export type { BackupProgress, RestoreRange, SnapshotManifest, DedupePolicy, StoreConfig, PolicyFile, TargetPolicy, SnapshotInfo, SnapshotFilter, RestoreProgress };

/** What `restoreTo` takes besides the destination. */
export interface RestoreToOptions extends RestoreRange {
  /** Where in a FileHandle to start writing (default 0). */
  position?: number;
  /** Leave runs of zeros as holes (a FileHandle that has no bytes from `position` on). */
  sparse?: boolean;
  /** Stops the restore: it rejects with ABORTED; what was written stays written. */
  signal?: AbortSignal;
  /** Bytes written so far, after each write. */
  onProgress?: (p: RestoreProgress) => void;
}

/** What `restore` (the stream) takes. */
export interface RestoreOptions extends RestoreRange {
  /** Destroys the stream with ABORTED. */
  signal?: AbortSignal;
}

export interface InitOptions {
  avgSize?: number;
  minSize?: number;
  maxSize?: number;
  normalization?: number;
  compression?: CompressionName;
  dedupe?: DedupePolicy;
  packSize?: number;
}

export interface OpenOptions {
  /** No lock, no index: restore, list and stats only. */
  readOnly?: boolean;
  /**
   * No lock, no index, like readOnly, but deferred backups may land in staging: the mode the
   * CLI uses for `backup --policy deferred`, so it runs while another process holds the lock
   * (e.g. `chunkyard process`).
   */
  stageOnly?: boolean;
  /** Chunking engine (default: native when it loads). */
  engine?: EngineName | 'auto';
  /** Compression worker threads (default: number of cores). */
  threads?: number;
  /** Command line or purpose recorded in the lock file, for the STORE_LOCKED message. */
  purpose?: string;
  /**
   * Open for one backup of `target`: for writing, or like stageOnly when the backup's
   * effective policy (the override, else the target's, else the store's) is deferred, so that
   * it runs while another process holds the lock. One open instead of a read-only probe
   * followed by the real one. Ignored with readOnly or stageOnly.
   */
  forBackup?: { target: string; policy?: DedupePolicy };
}

export interface BackupCallOptions {
  target: string;
  /** Dedupe policy for this stream (default: the store's). */
  policy?: DedupePolicy;
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
  /**
   * Bytes read from the source per slice (default 4 MiB; 64 KiB to 64 MiB). The stream holds
   * 3 to 6 slots of 2 × (sliceBytes + maxSize), as many as fit in 48 MiB (42.5 MiB at the
   * defaults): larger slices cost fewer hand-overs per byte, smaller ones suit many streams
   * in one process (the daemon's uploads use 2 MiB). A deferred backup stages the stream as
   * it comes and does not use it.
   */
  sliceBytes?: number;
  /** The machine this backup comes from (default: os.hostname()). */
  host?: string;
  /** Labels to find and keep it by (`snapshots`, `forget`, retention's `tags`). */
  tags?: string[];
  /** Free key=value labels, recorded as given. */
  metadata?: Record<string, string>;
}

/** A backup resolves to the snapshot object it committed (src/snapshot/info.ts). */
export type BackupResult = SnapshotInfo;

export interface ProcessProgress {
  /** Staged snapshots done so far, and in all. */
  snapshotsDone: number;
  snapshots: number;
  /** Bytes of the snapshot being processed so far, and its size. */
  bytes: number;
  snapshotBytes: number;
}

export interface ProcessOptions {
  signal?: AbortSignal;
  onProgress?: (p: ProcessProgress) => void;
  /** Only these snapshots (default: every staged snapshot, oldest first). */
  ids?: string[];
}

export interface ProcessResult {
  processed: { id: string; target: string; logicalBytes: number; newBytes: number; storedBytes: number; seconds: number }[];
  logicalBytes: number;
  seconds: number;
}

export interface StoreStats {
  snapshots: number;
  logicalBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  dedupeRatio: number;
  reductionRatio: number;
  chunks: number;
  packs: number;
  stagingBytes: number;
  /** Per target and per policy: snapshots, logical bytes, and what their backups added. */
  byTarget: Record<string, UsageBreakdown>;
  byPolicy: Record<string, UsageBreakdown>;
}

export interface UsageBreakdown {
  snapshots: number;
  logicalBytes: number;
  newBytes: number;
  storedBytes: number;
  stagingBytes: number;
}

export class Store {
  private closed = false;
  private pool: CompressionPool | undefined;

  private constructor(
    readonly path: string,
    readonly backend: Backend,
    readonly config: StoreConfig,
    private readonly options: OpenOptions,
    private readonly lock: WriterLock | undefined,
    private readonly index: FingerprintIndex | undefined,
  ) {}

  /** Creates a new store at `path` (the directory may exist but must not hold a store). */
  static async init(path: string, options: InitOptions = {}): Promise<StoreConfig> {
    checkOptions('Store.init', options);
    await initBlake3();
    const chunker = resolveChunkerParams({ avgSize: options.avgSize, minSize: options.minSize, maxSize: options.maxSize, normalization: options.normalization });
    const config = newConfig(
      { minSize: chunker.minSize, avgSize: chunker.avgSize, maxSize: chunker.maxSize, normalization: chunker.normalization },
      validateCompression(options.compression ?? 'lz4'),
      validatePolicy(options.dedupe ?? 'immediate'),
      options.packSize,
    );
    const backend = await openFsBackend(resolve(path), { create: true });
    try {
      await writeConfig(backend, config);
    } finally {
      await backend.close();
    }
    return config;
  }

  static async open(path: string, options: OpenOptions = {}): Promise<Store> {
    checkOptions('Store.open', options);
    let writer = !options.readOnly && !options.stageOnly;
    // What does not depend on the store starts at once and overlaps the steps that wait on
    // the disk: compiling the metadata hasher (off-thread) and, for a writer, loading
    // LevelDB's modules (~15 ms of a process start).
    const hasherReady = initBlake3();
    if (writer) preloadLevel();
    const root = resolve(path);
    const [opened, hashed] = await Promise.allSettled([openFsBackend(root), hasherReady]);
    if (opened.status === 'rejected') throw opened.reason;
    const backend = opened.value;
    if (hashed.status === 'rejected') {
      await backend.close();
      throw hashed.reason;
    }
    let lock: WriterLock | undefined;
    let index: FingerprintIndex | undefined;
    let pool: CompressionPool | undefined;
    try {
      const config = await readConfig(backend);
      if (writer && options.forBackup) {
        const { target, policy } = options.forBackup;
        const override = policy === undefined ? undefined : validatePolicy(policy);
        if (effectivePolicy(config, await readPolicies(backend), validateTargetName(target), override).dedupe === 'deferred') {
          writer = false;
          options = { ...options, stageOnly: true };
        }
      }
      if (writer) {
        lock = await acquireWriterLock(root, { command: options.purpose ?? 'chunkyard' });
        pool = new CompressionPool({ threads: options.threads });
        index = await FingerprintIndex.open(join(root, 'index'), backend);
      }
      const store = new Store(root, backend, config, options, lock, index);
      store.pool = pool;
      return store;
    } catch (err) {
      await pool?.close().catch(() => {});
      await index?.close().catch(() => {});
      await lock?.release().catch(() => {});
      await backend.close();
      throw err;
    }
  }

  private check(): void {
    if (this.closed) throw new ChunkyardError('STORE_CLOSED', 'the store was closed');
  }

  private getPool(): CompressionPool {
    this.pool ??= new CompressionPool({ threads: this.options.threads });
    return this.pool;
  }

  private sink: ChunkSink | undefined;
  /** Backups and process share it; prune takes it alone (src/util/gate.ts). */
  private readonly gate = new Gate();
  /**
   * Manifests: process passes share it (each rewrites the manifests it processes); forget
   * and prune take it alone. Forget deletes manifests only, so it need not wait for backups
   * (which in a daemon may run for hours), only for a process pass that could write a
   * forgotten manifest back. Always entered after `gate`, never before.
   */
  private readonly manifestGate = new Gate();

  /**
   * Backs up one stream; resolves with the committed snapshot once it is durable. The policy
   * is the override given here, else the target's (setPolicy), else the store's default.
   */
  async backup(source: ByteSource, options: BackupCallOptions): Promise<BackupResult> {
    this.check();
    checkOptions('Store.backup', options);
    const target = validateTargetName(options.target);
    const labels = snapshotLabels(options);
    const override = options.policy === undefined ? undefined : validatePolicy(options.policy);
    const sliceBytes = options.sliceBytes;
    if (sliceBytes !== undefined && !(Number.isInteger(sliceBytes) && sliceBytes >= MIN_SLICE_BYTES && sliceBytes <= MAX_SLICE_BYTES)) {
      throw badArgument(`sliceBytes = ${String(sliceBytes)}: must be a whole number of bytes from ${MIN_SLICE_BYTES} (64 KiB) to ${MAX_SLICE_BYTES} (64 MiB)`);
    }
    const policy = effectivePolicy(this.config, await readPolicies(this.backend), target, override);
    const id = newSnapshotId();
    const time = new Date().toISOString();
    const started = Date.now();
    if (policy.dedupe === 'deferred') {
      if (this.options.readOnly) throw badArgument('the store was opened read-only; open it without readOnly to back up');
      const staged = await stageStream(this.backend, getHasher(this.options.engine ?? 'auto'), id, source, {
        signal: options.signal,
        onProgress: (bytes) => options.onProgress?.({ bytes, chunks: 0, newChunks: 0, newBytes: 0 }),
      });
      const seconds = (Date.now() - started) / 1000;
      const manifest: SnapshotManifest = {
        version: MANIFEST_VERSION, id, target, time, ...labels, logicalBytes: staged.bytes, chunks: 0, policy: 'deferred', recipe: null, staging: staged,
        ingest: { newChunks: 0, newBytes: 0, storedBytes: 0, seconds },
      };
      try {
        await writeManifest(this.backend, manifest);
      } catch (err) {
        await dropStaged(this.backend, id, staged).catch(() => {});
        throw err;
      }
      return snapshotInfo(manifest);
    }
    const sink = this.getSink(policy.dedupe);
    // From the first pack to the manifest, prune and forget (this process's) must wait.
    const leave = await this.gate.enterShared();
    try {
      const r = await runIngest(sink, this.newChunker(), source, { id, policy: policy.dedupe, compression: policy.compression, signal: options.signal, onProgress: options.onProgress, sliceBytes });
      const seconds = (Date.now() - started) / 1000;
      const manifest: SnapshotManifest = {
        version: MANIFEST_VERSION, id, target, time, ...labels, logicalBytes: r.recipe.logicalBytes, chunks: r.chunks, policy: policy.dedupe,
        recipe: { name: r.recipe.name, bytes: r.recipe.bytes, blake3: r.recipe.blake3 }, staging: null,
        ingest: { newChunks: r.newChunks, newBytes: r.newBytes, storedBytes: r.storedBytes, seconds },
      };
      await writeManifest(this.backend, manifest);
      return snapshotInfo(manifest);
    } finally {
      leave();
    }
  }

  private getSink(policy: DedupePolicy): ChunkSink {
    if (!this.index) {
      throw badArgument(this.options.stageOnly ? `the store was opened for staging only; the ${policy} policy needs it opened for writing` : 'the store was opened read-only; open it without readOnly to back up');
    }
    this.sink ??= new ChunkSink(this.backend, this.index, this.getPool(), this.config.packSize);
    return this.sink;
  }

  private newChunker() {
    const { minSize, avgSize, maxSize, normalization } = this.config.chunker;
    return createChunker({ minSize, avgSize, maxSize, normalization }, { engine: this.options.engine ?? 'auto' });
  }

  /**
   * The post-process pass of the deferred policy: chunks, dedupes and compresses staged
   * snapshots into packs, switches each manifest to its recipe atomically, then frees the
   * staging space. Resumable and crash-safe: a snapshot is either still staged (and is
   * processed again from the start next time) or switched; a crash in between leaves at
   * most an unreferenced recipe and packs, which dedupe the next attempt and prune reclaims.
   */
  async process(options: ProcessOptions = {}): Promise<ProcessResult> {
    this.check();
    checkOptions('Store.process', options);
    return this.gate.run(false, () => this.manifestGate.run(false, () => this.processNow(options)));
  }

  private async processNow(options: ProcessOptions): Promise<ProcessResult> {
    const started = Date.now();
    let staged = (await this.snapshots()).filter((s) => s.staged);
    if (options.ids) {
      const wanted = new Set(options.ids);
      staged = staged.filter((s) => wanted.has(s.id));
    }
    const sink = this.getSink('deferred');
    await this.sweepProcessedStaging();
    const hasher = getHasher(this.options.engine ?? 'auto');
    const policies = await readPolicies(this.backend);
    const result: ProcessResult = { processed: [], logicalBytes: 0, seconds: 0 };
    for (const [n, snap] of staged.entries()) {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'process cancelled', { cause: options.signal.reason });
      const manifest = await readManifest(this.backend, snap.id);
      if (!manifest.staging) continue; // switched meanwhile (another process pass)
      const staging = manifest.staging;
      const t0 = Date.now();
      const report = (bytes: number) => options.onProgress?.({ snapshotsDone: n, snapshots: staged.length, bytes, snapshotBytes: manifest.logicalBytes });
      const source = readStaged(this.backend, hasher, manifest.id, staging, 0, staging.bytes);
      const r = await runIngest(sink, this.newChunker(), source, {
        id: manifest.id,
        policy: 'immediate',
        compression: effectivePolicy(this.config, policies, manifest.target).compression,
        signal: options.signal,
        onProgress: (p) => report(p.bytes),
      });
      if (r.recipe.logicalBytes !== manifest.logicalBytes) {
        throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: processing gave ${r.recipe.logicalBytes} bytes, staging holds ${manifest.logicalBytes}`);
      }
      const seconds = (Date.now() - t0) / 1000;
      await replaceManifest(this.backend, {
        ...manifest,
        chunks: r.chunks,
        recipe: { name: r.recipe.name, bytes: r.recipe.bytes, blake3: r.recipe.blake3 },
        staging: null,
        ingest: { newChunks: r.newChunks, newBytes: r.newBytes, storedBytes: r.storedBytes, seconds },
      });
      await dropStaged(this.backend, manifest.id, staging);
      result.processed.push({ id: manifest.id, target: manifest.target, logicalBytes: manifest.logicalBytes, newBytes: r.newBytes, storedBytes: r.storedBytes, seconds });
      result.logicalBytes += manifest.logicalBytes;
      report(manifest.logicalBytes);
    }
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }

  /**
   * Deletes staging objects of snapshots already switched to a recipe: what a crash between
   * the manifest switch and the staging deletion leaves behind. Staging objects without any
   * manifest may belong to a deferred backup still landing; prune judges those by age.
   */
  private async sweepProcessedStaging(): Promise<void> {
    const ids = new Set<string>();
    for await (const o of this.backend.list('staging/')) {
      const m = /^staging\/([0-9a-f]{16})\.(raw|sums)$/.exec(o.name);
      if (m) ids.add(m[1]!);
    }
    for (const id of ids) {
      let manifest: SnapshotManifest;
      try {
        manifest = await readManifest(this.backend, id);
      } catch {
        continue;
      }
      if (manifest.staging === null) await dropStaged(this.backend, id, { name: stagingName(id), bytes: 0 });
    }
  }

  /** The dedupe mode and compression a backup of `target` would use. */
  async effectivePolicy(target: string, override?: DedupePolicy): Promise<{ dedupe: DedupePolicy; compression: CompressionName }> {
    this.check();
    validateTargetName(target);
    return effectivePolicy(this.config, await readPolicies(this.backend), target, override === undefined ? undefined : validatePolicy(override));
  }

  /** Per-target settings: every target's, as stored. */
  async policies(): Promise<PolicyFile> {
    this.check();
    return readPolicies(this.backend);
  }

  /** Sets a target's dedupe mode and/or compression for its future backups. */
  async setPolicy(target: string, change: { dedupe?: DedupePolicy; compression?: CompressionName }): Promise<PolicyFile> {
    this.check();
    checkOptions('Store.setPolicy', change);
    if (this.options.readOnly || this.options.stageOnly) throw badArgument('open the store for writing to change policies');
    return setTargetPolicy(this.backend, target, change);
  }

  /**
   * Resolves, in this order: a full snapshot id (16 hex digits); a target name (its latest
   * snapshot); a unique id prefix of at least 4 hex digits.
   */
  async resolveSnapshot(idOrTarget: string, filter: Omit<SnapshotFilter, 'target'> = {}): Promise<SnapshotManifest> {
    this.check();
    checkOptions('Store.resolveSnapshot', filter);
    if (typeof idOrTarget !== 'string' || idOrTarget.length === 0) throw badArgument('a snapshot id or target name is required');
    // With host or tags, the name is a target and the answer its latest matching snapshot.
    if (filter.host !== undefined || filter.tags !== undefined) {
      validateTargetName(idOrTarget);
      const matching = await this.snapshots({ ...filter, target: idOrTarget });
      if (matching.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot of target ${JSON.stringify(idOrTarget)} matches ${JSON.stringify(filter)}`);
      return readManifest(this.backend, matching[matching.length - 1]!.id);
    }
    const ids = await listSnapshotIds(this.backend);
    if (/^[0-9a-f]{16}$/.test(idOrTarget) && ids.includes(idOrTarget)) return readManifest(this.backend, idOrTarget);
    const snaps = await this.snapshots({ target: idOrTarget });
    if (snaps.length > 0) return readManifest(this.backend, snaps[snaps.length - 1].id);
    if (/^[0-9a-f]{4,16}$/.test(idOrTarget)) {
      const matches = ids.filter((id) => id.startsWith(idOrTarget));
      if (matches.length === 1) return readManifest(this.backend, matches[0]);
      if (matches.length > 1) throw badArgument(`snapshot id prefix ${idOrTarget} is ambiguous (${matches.length} snapshots)`);
    }
    throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot or target named ${JSON.stringify(idOrTarget)}`);
  }

  /** A verified byte stream of a snapshot, or of [start, end) of it. */
  async restore(idOrTarget: string, options: RestoreOptions = {}): Promise<Readable> {
    checkOptions('Store.restore', options);
    const manifest = await this.resolveSnapshot(idOrTarget);
    const { signal, ...range } = options;
    return abortableStream(restoreStream(this.restoreContext(), manifest, range), signal);
  }

  /**
   * Writes a snapshot (or [start, end) of it) to `destination`, verified, in order: the fast
   * path for restores to a file or a socket (no buffer is allocated per read). A Writable
   * gets one write at a time, each awaited; a FileHandle is written from `position` (default
   * 0). Where the file has no bytes yet (it ends at or before `position`), runs of zeros are
   * allocated with fallocate(2) instead of written (the same bytes, no holes, no page-cache
   * writes), and with `sparse` they are left as holes; `sparse` needs such a file
   * (BAD_ARGUMENT otherwise, nothing written).
   * Resolves to the number of bytes written. On an error, what was written stays written:
   * write to a temporary name and rename it, as `chunkyard restore --output` does.
   */
  async restoreTo(idOrTarget: string, destination: Writable | FileHandle, options: RestoreToOptions = {}): Promise<number> {
    this.check();
    checkOptions('Store.restoreTo', options);
    options.signal?.throwIfAborted();
    this.getPool(); // without the addon, its worker boots while the snapshot is looked up
    const manifest = await this.resolveSnapshot(idOrTarget);
    const ctx = this.restoreContext();
    const range: RestoreRange = { start: options.start, end: options.end };
    if (isFileHandle(destination)) {
      const fresh = (await destination.stat()).size <= (options.position ?? 0);
      if (options.sparse && !fresh) {
        // Skipped zeros would leave the file's old bytes where the snapshot has zeros.
        throw badArgument(`sparse restore needs the file to end at the position it starts writing (${options.position ?? 0}); open it empty ('w') or restore without sparse`);
      }
      // Past the file's end every byte already reads as zero.
      const zeros: ZeroRuns = options.sparse ? 'hole' : fresh ? 'allocate' : 'write';
      const sink = fileSink(destination, { position: options.position, zeros });
      const n = await restoreInto(ctx, manifest, range, abortableSink(sink, options));
      await sink.finish();
      return n;
    }
    return restoreInto(ctx, manifest, range, abortableSink(writableSink(destination), options));
  }

  private restoreContext(): RestoreContext {
    return { backend: this.backend, pool: this.getPool(), hasher: getHasher(this.options.engine ?? 'auto'), maxSize: this.config.chunker.maxSize };
  }

  /** The snapshots that match `filter` (target, host, tag lists: src/snapshot/info.ts), oldest first. */
  async snapshots(filter: SnapshotFilter = {}): Promise<SnapshotInfo[]> {
    this.check();
    checkOptions('Store.snapshots', filter);
    const matches = snapshotMatcher(filter);
    const out: SnapshotInfo[] = [];
    for (const id of await listSnapshotIds(this.backend)) {
      let m: SnapshotManifest;
      try {
        m = await readManifest(this.backend, id);
      } catch (err) {
        // One damaged manifest must not hide every other snapshot; it is reported, not dropped.
        if (!(err instanceof ChunkyardError) || (err.code !== 'CORRUPT' && err.code !== 'FORMAT_UNSUPPORTED')) throw err;
        process.emitWarning(`snapshot ${id} is unreadable and left out of the list: ${err.message}`, { code: 'CHUNKYARD_SNAPSHOT_UNREADABLE' });
        continue;
      }
      if (!matches(m)) continue;
      out.push(snapshotInfo(m));
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  async stats(): Promise<StoreStats> {
    this.check();
    const snaps = await this.snapshots();
    const logicalBytes = snaps.reduce((s, x) => s + x.logicalBytes, 0);
    const idx = this.index?.getStats() ?? (await readIndexSummary(join(this.path, 'index'))) ?? (await this.scanPacks());
    const byTarget: Record<string, UsageBreakdown> = {};
    const byPolicy: Record<string, UsageBreakdown> = {};
    let stagingBytes = 0;
    for (const s of snaps) {
      const staged = s.staged ? s.logicalBytes : 0;
      stagingBytes += staged;
      for (const [map, key] of [[byTarget, s.target], [byPolicy, s.policy]] as const) {
        const u = (map[key] ??= { snapshots: 0, logicalBytes: 0, newBytes: 0, storedBytes: 0, stagingBytes: 0 });
        u.snapshots++;
        u.logicalBytes += s.logicalBytes;
        u.newBytes += s.newBytes;
        u.storedBytes += s.storedBytes;
        u.stagingBytes += staged;
      }
    }
    return {
      snapshots: snaps.length,
      logicalBytes,
      uniqueBytes: idx.uniqueBytes,
      storedBytes: idx.storedBytes,
      dedupeRatio: idx.uniqueBytes > 0 ? logicalBytes / idx.uniqueBytes : 0,
      reductionRatio: idx.storedBytes + stagingBytes > 0 ? logicalBytes / (idx.storedBytes + stagingBytes) : 0,
      chunks: idx.chunks,
      packs: idx.packs,
      stagingBytes,
      byTarget,
      byPolicy,
    };
  }

  /** Stats from the packs themselves, when no index summary is at hand. */
  private async scanPacks(): Promise<IndexStats> {
    const seen = new Set<string>();
    const stats: IndexStats = { chunks: 0, uniqueBytes: 0, storedBytes: 0, packs: 0 };
    for await (const o of this.backend.list('packs/')) {
      if (!o.name.endsWith('.pack')) continue;
      const t = await readPackTable(this.backend, o.name);
      stats.packs++;
      stats.storedBytes += o.size;
      for (const e of t.entries) {
        const k = e.fingerprint.toString('latin1');
        if (seen.has(k)) continue;
        seen.add(k);
        stats.chunks++;
        stats.uniqueBytes += e.rawLength;
      }
    }
    return stats;
  }

  /** The index of a store opened for writing, else BAD_ARGUMENT naming what needed it. */
  private writerIndex(what: string): FingerprintIndex {
    if (!this.index) throw badArgument(`${what} needs the store opened for writing (it was opened ${this.options.stageOnly ? 'for staging only' : 'read-only'})`);
    return this.index;
  }

  /**
   * Forgets snapshots, by id or by a retention policy per target: deletes their manifests
   * (prune reclaims the data). Waits for this process's process passes and prune, not for
   * its backups (a backup still running has no manifest to forget). docs/operations.md.
   */
  async forget(options: ForgetOptions): Promise<ForgetReport> {
    this.check();
    checkOptions('Store.forget', options);
    if (options.policy !== undefined) checkOptions('Store.forget policy', options.policy);
    this.writerIndex('forget');
    if (options.target !== undefined) validateTargetName(options.target);
    return this.manifestGate.run(true, async () => (await import('../maintenance/forget.js')).forget(this.backend, await this.snapshots(), options));
  }

  /**
   * Deletes data no snapshot references and rewrites mostly-unused packs (mark and sweep,
   * crash-safe). Waits for this process's backups to finish, and holds new ones back while it
   * runs; other processes are kept out by the writer lock. docs/operations.md.
   */
  async prune(options: PruneOptions = {}): Promise<PruneReport> {
    this.check();
    checkOptions('Store.prune', options);
    const index = this.writerIndex('prune');
    return this.gate.run(true, () => this.manifestGate.run(true, async () => (await import('../maintenance/prune.js')).prune({ backend: this.backend, index, pool: this.getPool(), packSize: this.config.packSize }, options)));
  }

  /**
   * Checks a store's structure (and with readData every chunk) and reports every problem;
   * changes nothing. Static because it must run on stores that Store.open refuses (a damaged
   * config or index is reported, not thrown). Takes the writer lock, so that no backup, process
   * or prune changes the store under it (STORE_LOCKED when another process holds it).
   */
  static async check(path: string, options: CheckOptions & { threads?: number; engine?: EngineName | 'auto'; purpose?: string } = {}): Promise<CheckReport> {
    checkOptions('Store.check', options);
    await initBlake3();
    const root = resolve(path);
    const backend = await openFsBackend(root);
    const errors: Problem[] = [];
    let lock: WriterLock | undefined;
    let index: FingerprintIndex | undefined;
    let pool: CompressionPool | undefined;
    try {
      try {
        await readConfig(backend);
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code === 'STORE_NOT_FOUND' || err.code === 'IO_ERROR') throw err;
        errors.push({ code: err.code, message: `config.json: ${err.message}` });
      }
      lock = await acquireWriterLock(root, { command: options.purpose ?? 'check' });
      try {
        index = await FingerprintIndex.open(join(root, 'index'), backend, { indexMissingPacks: false });
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code === 'STORE_LOCKED') throw err;
        errors.push({ code: err.code, message: `index: ${err.message} (run chunkyard repair to rebuild it)` });
      }
      // Only reading data needs the worker pool: do not start threads for nothing.
      if (options.readData) pool = new CompressionPool({ threads: options.threads ?? verifyThreads() });
      return await (await import('../maintenance/check.js')).check({ backend, pool, hasher: getHasher(options.engine ?? 'auto'), index, initial: { errors, warnings: [] } }, options);
    } finally {
      await pool?.close().catch(() => {});
      await index?.close().catch(() => {});
      await lock?.release().catch(() => {});
      await backend.close();
    }
  }

  /**
   * Rebuilds the index from the packs, salvages damaged packs (moving them aside to
   * damaged/), points recipes at salvaged or other copies, and reports the snapshots that
   * still lack chunks; never removes a snapshot. Static for the same reason as check; takes
   * the writer lock. A damaged config.json is not repaired (restore it from a copy).
   */
  static async repair(path: string, options: RepairOptions & { threads?: number; purpose?: string } = {}): Promise<RepairReport> {
    checkOptions('Store.repair', options);
    await initBlake3();
    const root = resolve(path);
    const backend = await openFsBackend(root);
    let lock: WriterLock | undefined;
    let index: FingerprintIndex | undefined;
    let pool: CompressionPool | undefined;
    try {
      const config = await readConfig(backend);
      lock = await acquireWriterLock(root, { command: options.purpose ?? 'repair' });
      // The index is a cache of the packs: it is rebuilt from nothing, whatever state it is in.
      await rm(join(root, 'index'), { recursive: true, force: true });
      index = await FingerprintIndex.open(join(root, 'index'), backend, { indexMissingPacks: false });
      pool = new CompressionPool({ threads: options.threads });
      return await (await import('../maintenance/repair.js')).repair({ backend, pool, index, packSize: config.packSize }, options);
    } finally {
      await pool?.close().catch(() => {});
      await index?.close().catch(() => {});
      await lock?.release().catch(() => {});
      await backend.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The pool and the index have nothing to do with each other: close them side by side.
    const closed = await Promise.allSettled([this.pool?.close(), this.index?.close()]);
    await this.lock?.release();
    await this.backend.close();
    const failed = closed.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** A FileHandle (fs/promises) rather than a stream: it has a descriptor and positional writes. */
function isFileHandle(d: unknown): d is FileHandle {
  const h = d as FileHandle;
  return typeof h?.fd === 'number' && typeof h.truncate === 'function' && typeof h.sync === 'function';
}

/**
 * Workers for check --read-data: one per core (CHUNKYARD_THREADS still wins). Unlike a
 * backup, nothing else in the process needs a core: the main thread only reads packs.
 */
function verifyThreads(): number | undefined {
  return process.env['CHUNKYARD_THREADS'] ? undefined : availableParallelism();
}
