/**
 * The Store: a chunkyard store over any backend (a local directory, the embedded default; an
 * `s3://` bucket; any `Backend` object).
 *
 *   const store = await Store.open('/backups/store');
 *   const snap = await store.backup(fs.createReadStream('disk.img'), { target: 'disk' });
 *   (await store.restore(snap.id)).pipe(fs.createWriteStream('copy.img'));
 *   await store.close();
 *
 * No lock: any number of processes, on any number of hosts, may back up, process, forget,
 * check and restore at once, and one prune or repair beside them. Each operation that may
 * reference stored data holds a writer session (src/session/); prune deletes in two phases
 * (src/session/condemned.ts). Each process keeps its own fingerprint index as a local cache
 * (src/fingerprints/), filled from the store's pack table objects and never trusted without the
 * pack's own table. docs/operations.md, "Many writers".
 */
import { homedir, tmpdir } from 'node:os';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { ByteSource } from '../chunking/batcher.js';
import type { Backend } from '../backend/types.js';
import { FsBackend, processAlive } from '../backend/fs.js';
import { openBackend } from '../backend/location.js';
import type { ArchiveOpener } from '../tier/cold.js';
import type { TierReport } from '../tier/move.js';
import type { RestorePlan } from '../tier/restore.js';
import { ARCHIVE_TIER_FEATURE } from '../tier/layout.js';
import { coldSource, pruneTier, restorePlan, runTier, tieredView, type TierCallOptions, type TierStore } from '../tier/store-tier.js';
import { createChunker, getHasher, resolveChunkerParams } from '../chunking/index.js';
import type { EngineName } from '../chunking/types.js';
import { CompressionPool } from '../compress/pool.js';
import type { CompressionName } from '../compress/messages.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { FingerprintIndex, preloadLevel } from '../fingerprints/fingerprint-index.js';
import { readPackTable, readTableObject } from '../pack/reader.js';
import { MANIFEST_VERSION, listSnapshotIds, readManifest, readManifests, replaceManifest, stagingName, validatePolicy, validateTargetName, writeManifest, type DedupePolicy, type SnapshotManifest } from '../snapshot/manifest.js';
import { snapshotInfo, snapshotLabels, snapshotMatcher, type SnapshotFilter, type SnapshotInfo } from '../snapshot/info.js';
import { checkOptions } from './options.js';
import { abortableSink, abortableStream, type RestoreProgress } from './restore-control.js';
import { newSnapshotId, packIdFromName, packIdFromTableName, tableObjectName } from '../util/ids.js';
import { initBlake3 } from '../util/blake3.js';
import { MAX_SLICE_BYTES, MIN_SLICE_BYTES, runIngest, type BackupProgress } from './backup.js';
import { targetHooks, validateHooks, type BackupHooks, type HookSpec } from '../hooks/config.js';
import { HookRun, type Consistency } from '../hooks/session.js';
import { dropStaged, readStaged, stageStream } from '../snapshot/staging.js';
import { backupPolicy, effectivePolicy, readPolicies, replaceDamagedPolicies, setTargetPolicy, type PolicyFile, type TargetPolicy } from './policies.js';
import { ChunkSink } from './chunk-sink.js';
import { assertWritable, hasFeature, newConfig, readConfig, upgradeConfig, validateCompression, validateZstdLevel, writeConfig, type StoreConfig } from './config.js';
import { fileSink, restoreInto, openRestoreStream, writableSink, type RestoreContext, type RestoreRange, type ZeroRuns } from './restore.js';
import { WriterSession } from '../session/session.js';
import { ensureDeltaFeature, refuseWithEncryption, openDeltaStream, recipeVersionFor, reportDeltaStats, validateIndexChunks, withDeltaSetting } from '../delta/store-hooks.js';
import { acquireWriterLock } from './lock.js';
import { resolveRange } from './range.js';
import { packsCondemnedBy, readCondemned } from '../session/condemned.js';
import { availableParallelism } from 'node:os';
import { CryptBackend, plainBackend } from '../crypto/crypt-backend.js';
import { createStoreKeys, ENCRYPTION_FEATURE, openStoreBackend } from '../crypto/store-keys.js';
import { KEY_OPTION_NAMES, type KeyOptions } from '../crypto/secret.js';
// The maintenance commands load their modules when called: a backup or a restore, whose
// process start-up counts on small streams, does not pay for them.
import type { CheckOptions, CheckReport } from '../maintenance/check.js';
import type { ForgetOptions, ForgetReport } from '../maintenance/forget.js';
import { checkRecompress, type PruneOptions, type PruneReport } from '../maintenance/prune.js';
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
  /**
   * Encrypt the store (docs/encryption.md): needs a password or key file (KeyOptions, or
   * CHUNKYARD_PASSWORD…). Default false: a store is not encrypted unless asked.
   */
  encryption?: boolean;
  /**
   * With encryption: take the key material of this existing encrypted store (its master key,
   * opened with the key options given here, else the new store's) instead of a new one; the
   * new store gets its own key slot. The two stores then replicate sealed chunks as they are.
   */
  keysFrom?: import('../replicate/keys-from.js').KeysFrom;
  /** With encryption and a password: the KDF of the first key slot (default: $CHUNKYARD_KDF, else "argon2id"). */
  kdf?: import('../crypto/keys.js').PasswordKdf;
  /** Delta compression of similar chunks, the store's default (docs/delta.md): "on" | "off" (default). */
  delta?: 'on' | 'off';
  /** zstd level of new zstd chunks, recorded in the config (1..19; default: the build's, ZSTD_LEVEL). */
  zstdLevel?: number;
}

/** Where a store lives: a directory path, an `s3://BUCKET[/PREFIX]` URL, or a Backend. */
export type StoreLocation = string | Backend;

/** The key options (password, passwordFile, passwordCommand, keyFile) of an encrypted store. */
export function keyOptionsOf(options: KeyOptions): KeyOptions {
  const o: KeyOptions = {};
  for (const k of KEY_OPTION_NAMES) if (options[k] !== undefined) o[k] = options[k];
  return o;
}

export interface LocationOptions extends KeyOptions {
  /** S3 endpoint URL for `s3://` locations (default: CHUNKYARD_S3_ENDPOINT, else AWS's). */
  s3Endpoint?: string;
}

export interface OpenOptions extends LocationOptions {
  /** Never write to the store: restore, list, stats (a read-only mount works). */
  readOnly?: boolean;
  /** Chunking engine (default: native when it loads). */
  engine?: EngineName | 'auto';
  /** Compression worker threads (default: number of cores). */
  threads?: number;
  /** Command line or purpose recorded in writer sessions, for messages. */
  purpose?: string;
  /**
   * Folder of this node's fingerprint index cache (default: `<store>/cache` for a directory
   * store, else $CHUNKYARD_CACHE_DIR or $XDG_CACHE_HOME/chunkyard/<store id>, ~/.cache by
   * default). Rebuildable: deleting it costs dedupe until the next backup refills it.
   */
  cacheDir?: string;
  /** How the archive tier is reached (default: its location opened like a store's); tests wrap it. */
  archiveOpener?: ArchiveOpener;
  /**
   * Let backups of this Store dedupe against chunks that are only in the archive tier (default
   * false: a recent snapshot must restore without the archive). Uses an index cache of its own.
   */
  dedupeAgainstCold?: boolean;
  /** Candidates the delta similarity index of one backup holds at most (15 bytes each; default 4 Mi). */
  deltaIndexChunks?: number;
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
  /**
   * Application-consistency hooks (src/hooks/, docs/operations.md "Hooks"): `pre` runs
   * before the stream is read, `post` as soon as it has been read (before the commit) and
   * also on failure, abort or a killed process. Only what is given here runs: the library
   * never reads hooks from the store (`targetHooks` reads this machine's hooks file).
   */
  hooks?: BackupHooks;
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
  /** Bytes of all snapshots, as restored. */
  logicalBytes: number;
  /** Raw bytes of every chunk copy the packs hold: what is physically kept, before compression. */
  uniqueBytes: number;
  /** Raw bytes of the distinct chunks (each fingerprint once), whatever the copies. */
  distinctBytes: number;
  /** Bytes the packs take. */
  storedBytes: number;
  /** logicalBytes / uniqueBytes: the reduction dedupe achieved in what is stored. */
  dedupeRatio: number;
  /** logicalBytes / distinctBytes: what dedupe alone could reach (above dedupeRatio when copies are kept). */
  distinctRatio: number;
  /** logicalBytes / (storedBytes + stagingBytes): dedupe and compression together. */
  reductionRatio: number;
  /** Chunk copies in packs. */
  chunks: number;
  /** Distinct chunks (fingerprints). */
  distinctChunks: number;
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

/** What Store.openReplicaWriter gives src/replicate/. @internal */
export interface ReplicaWriter {
  backend: Backend;
  config: StoreConfig;
  sink: ChunkSink;
  session: WriterSession;
  /** The store's worker pool (decoding and verifying chunks that arrive). */
  pool: CompressionPool;
  end(): Promise<void>;
}

export class Store {
  private closed = false;
  /** Opened here from a location (closed with the Store), not handed in as an object. */
  private ownsBackend = true;
  private pool: CompressionPool | undefined;
  private indexOpening: Promise<FingerprintIndex> | undefined;
  private sink: ChunkSink | undefined;
  /** Writer sessions of this Store now running (backups, process, prune). */
  private activeSessions = 0;
  /** When this Store's index cache was last brought up to date (0: at its open, not yet noted). */
  private indexRefreshedAt = 0;
  /** Condemnation records seen at the last session start (to notice completed deletions). */
  private seenRecords = new Set<string>();
  /** Sessions of committed backups being removed (close() waits for them). */
  private readonly ending = new Set<Promise<void>>();
  /** Reader sessions (announceReader) not ended yet: close() ends them. */
  private readonly readers = new Set<WriterSession>();

  private constructor(
    /** The location as given (a path, a URL), for messages; the backend's for a Backend. */
    readonly location: string,
    readonly backend: Backend,
    readonly config: StoreConfig,
    private readonly options: OpenOptions,
  ) {}

  /** The directory of a local store; undefined for other backends. */
  get path(): string | undefined {
    return plainBackend(this.backend) instanceof FsBackend ? plainBackend(this.backend).location : undefined;
  }

  /**
   * Creates a new store at `location` (a directory may exist but must not hold a store; a
   * bucket must exist). Writes config.json only.
   */
  static async init(location: StoreLocation, options: InitOptions & LocationOptions = {}): Promise<StoreConfig> {
    checkOptions('Store.init', options);
    if (options.encryption && options.delta === 'on') throw refuseWithEncryption();
    if (options.keysFrom !== undefined && !options.encryption) throw badArgument('keysFrom goes with encryption');
    await initBlake3();
    const chunker = resolveChunkerParams({ avgSize: options.avgSize, minSize: options.minSize, maxSize: options.maxSize, normalization: options.normalization });
    const config = withDeltaSetting(newConfig(
      { minSize: chunker.minSize, avgSize: chunker.avgSize, maxSize: chunker.maxSize, normalization: chunker.normalization },
      validateCompression(options.compression ?? 'lz4'),
      validatePolicy(options.dedupe ?? 'immediate'),
      options.packSize,
    ), options.delta);
    if (options.zstdLevel !== undefined) config.zstdLevel = validateZstdLevel(options.zstdLevel);
    const backend = typeof location === 'string' ? await openBackend(location, { create: true, s3Endpoint: options.s3Endpoint }) : location;
    try {
      if (options.encryption) {
        // The key slot first, then the config (create-only) that names the feature.
        if ((await backend.stat('config.json')) !== undefined) throw new ChunkyardError('STORE_EXISTS', `a store already exists at ${backend.location}`);
        config.features = [ENCRYPTION_FEATURE];
        const master = options.keysFrom === undefined ? undefined : await (await import('../replicate/keys-from.js')).masterKeyOf(options.keysFrom, options.s3Endpoint);
        await writeConfig(await createStoreKeys(backend, config.id, keyOptionsOf(options), undefined, master, options.kdf), config);
      } else await writeConfig(backend, config);
      if (backend instanceof FsBackend) await backend.put(RESERVE_NAME, Buffer.alloc(RESERVE_BYTES), { exclusive: true }).catch(() => {});
    } finally {
      if (typeof location === 'string') await backend.close();
    }
    return config;
  }

  /**
   * Opens a store. Nothing is locked: the fingerprint index cache is opened when a backup
   * first needs it. A Backend object given here stays its creator's: close() does not close it.
   */
  static async open(location: StoreLocation, options: OpenOptions = {}): Promise<Store> {
    checkOptions('Store.open', options);
    // What does not depend on the store starts at once and overlaps the steps that wait on
    // the backend: compiling the metadata hasher (off-thread) and, for a writer, loading
    // LevelDB's modules (~15 ms of a process start).
    const hasherReady = initBlake3();
    if (!options.readOnly) preloadLevel();
    const opening = typeof location === 'string' ? openBackend(location, { s3Endpoint: options.s3Endpoint }) : Promise.resolve(location);
    const [opened, hashed] = await Promise.allSettled([opening, hasherReady]);
    if (opened.status === 'rejected') throw opened.reason;
    const raw = opened.value;
    try {
      if (hashed.status === 'rejected') throw hashed.reason;
      const backend = await openStoreBackend(raw, options);
      const config = await readConfig(backend);
      const store = new Store(typeof location === 'string' ? location : backend.location, backend, config, options);
      store.ownsBackend = typeof location === 'string';
      return store;
    } catch (err) {
      if (typeof location === 'string') await raw.close();
      throw err;
    }
  }

  /**
   * Upgrades a version-1 store (one writer at a time, under a lock file) to this build's
   * format (many writers): writes the table object of every pack, removes the old local
   * index, then the config of the new version. Refused while a version-1 writer holds the
   * store's lock. Idempotent; a store already current is left as it is.
   */
  static async upgrade(location: StoreLocation, options: LocationOptions = {}): Promise<{ from: number; to: number; tables: number }> {
    await initBlake3();
    const raw = typeof location === 'string' ? await openBackend(location, { s3Endpoint: options.s3Endpoint }) : location;
    try {
      const backend = await openStoreBackend(raw, options);
      const config = await readConfig(backend);
      if (config.version >= 2) return { from: config.version, to: config.version, tables: 0 };
      let lock: { release(): Promise<boolean> } | undefined;
      if (backend instanceof FsBackend) {
        // The old single-writer lock: taking it proves no version-1 writer is running.
        lock = await acquireWriterLock(backend.location, { command: 'upgrade' });
      }
      try {
        let tables = 0;
        for await (const o of backend.list('packs/')) {
          const packId = packIdFromName(o.name);
          if (!packId) continue;
          let table;
          try {
            table = await readPackTable(backend, o.name);
          } catch {
            continue; // damaged: check and repair deal with it
          }
          const bytes = await backend.get(o.name, { start: table.tableOffset, end: table.size });
          try {
            await backend.put(tableObjectName(packId), bytes, { exclusive: true });
            tables++;
          } catch (err) {
            if (!(err instanceof ChunkyardError && err.code === 'OBJECT_EXISTS')) throw err;
          }
        }
        const next = await upgradeConfig(backend, config);
        if (backend instanceof FsBackend) {
          await rm(join(backend.location, 'index'), { recursive: true, force: true });
        }
        return { from: config.version, to: next.version, tables };
      } finally {
        await lock?.release().catch(() => {});
      }
    } finally {
      if (typeof location === 'string') await raw.close();
    }
  }

  private check(): void {
    if (this.closed) throw new ChunkyardError('STORE_CLOSED', 'the store was closed');
  }

  private getPool(): CompressionPool {
    this.pool ??= new CompressionPool({ threads: this.options.threads, sealing: chunkSealing(this.backend), zstdLevel: this.config.zstdLevel });
    return this.pool;
  }

  /** This node's index cache folder (OpenOptions.cacheDir). */
  private cacheRoot(): string {
    if (this.options.cacheDir) return this.options.cacheDir;
    if (plainBackend(this.backend) instanceof FsBackend) return join(plainBackend(this.backend).location, 'cache');
    const base = process.env['CHUNKYARD_CACHE_DIR'] ?? join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'chunkyard');
    return join(base, this.config.id);
  }

  private writable(what: string): void {
    if (this.options.readOnly) throw badArgument(`${what} needs the store opened for writing (it was opened read-only)`);
    assertWritable(this.config, this.location);
  }

  /** This process's index cache (opened, and brought up to date, on first use). */
  private openIndex(): Promise<FingerprintIndex> {
    if (!this.indexOpening) {
      this.indexOpening = this.options.dedupeAgainstCold
        ? tieredView(this.tierStore(), { exposeColdTables: true }).then((view) => FingerprintIndex.openSlot(join(this.cacheRoot(), 'with-cold'), view))
        : FingerprintIndex.openSlot(this.cacheRoot(), this.backend);
      this.indexOpening.catch(() => {
        this.indexOpening = undefined; // a later call tries again
      });
    }
    return this.indexOpening;
  }

  private async getSink(): Promise<ChunkSink> {
    const index = await this.openIndex();
    this.sink ??= new ChunkSink(this.options.dedupeAgainstCold ? await tieredView(this.tierStore(), { exposeColdTables: true }) : this.backend, index, this.getPool(), this.config.packSize);
    return this.sink;
  }

  /**
   * Starts a writer session (src/session/): announced in the store BEFORE anything is looked
   * up, then the condemnation records are read, so that nothing prune is about to delete is
   * reused (`dedupe`: this session looks chunks up in the index).
   */
  private async beginSession(command: string, dedupe: boolean): Promise<WriterSession> {
    // A session of this Store still being removed (after a commit) is gone before the next
    // begins: a prune here must not find it live.
    if (this.ending.size > 0) await Promise.allSettled([...this.ending]);
    // The cache opens (LevelDB, and its refresh from tables/) while the session is announced:
    // it is a cache, so filling it needs no session; what is reused is decided only after.
    const opening = dedupe ? this.openIndex() : undefined;
    opening?.catch(() => {});
    const session = await WriterSession.start(this.backend, command);
    try {
      if (dedupe) {
        const index = await opening!;
        // A long-running writer (the daemon) learns of packs other writers stored since its
        // index opened: one listing of tables/ at most every INDEX_REFRESH_MS.
        if (Date.now() - this.indexRefreshedAt > INDEX_REFRESH_MS) {
          if (this.indexRefreshedAt > 0) await index.refresh();
          this.indexRefreshedAt = Date.now();
        }
        const read = await readCondemned(this.backend);
        const condemned = packsCondemnedBy(read);
        const names = new Set(read.records.map((r) => r.name));
        // A record that is gone means its deletions are done: what this process read of those
        // packs is dropped and read again before it is trusted.
        if ([...this.seenRecords].some((n) => !names.has(n))) index.dropLocalityCache();
        this.seenRecords = names;
        // Exclusions only grow while a session that read them may run (no await from here to
        // the count below: sessions starting together cannot clear each other's).
        if (this.activeSessions === 0) index.clearExclusions();
        index.exclude(condemned);
      }
      this.activeSessions++;
      return session;
    } catch (err) {
      await session.end().catch(() => {});
      throw err;
    }
  }

  /**
   * For src/replicate/ (not part of the public API): a deduping writer session of this store
   * with its chunk sink, for a writer that places already-stored chunks itself. The caller
   * commits (assertCurrent, then the manifest) and calls end() exactly once.
   * @internal
   */
  async openReplicaWriter(command: string): Promise<ReplicaWriter> {
    this.check();
    this.writable('replicate');
    const session = await this.beginSession(command, true);
    try {
      const sink = await this.getSink();
      let ended = false;
      return { backend: this.backend, config: this.config, sink, session, pool: this.getPool(), end: async () => {
        if (ended) return;
        ended = true;
        await this.endSession(session);
      } };
    } catch (err) {
      await this.endSession(session);
      throw err;
    }
  }

  /**
   * This process's fingerprint index cache, for the daemon's have/want answers (advisory: a
   * commit checks again inside a session). @internal
   */
  async fingerprintIndex(): Promise<FingerprintIndex> {
    this.check();
    return this.openIndex();
  }

  /** Ends a session; after a commit, a failure here is a warning, never the caller's error. */
  private async endSession(session: WriterSession): Promise<void> {
    this.activeSessions--;
    try {
      await session.end();
    } catch (err) {
      process.emitWarning(`writer session ${session.id} could not be removed (${(err as Error).message}); maintenance takes it for ended once it expires`, { code: 'CHUNKYARD_SESSION_NOT_ENDED' });
    }
  }

  /**
   * Backs up one stream; resolves with the committed snapshot once it is durable. The policy
   * is the override given here, else the target's (setPolicy), else the store's default.
   * Once the manifest is written (the commit), nothing turns the result into a failure.
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
    this.writable('backup');
    const policy = await backupPolicy(this.backend, this.config, target, override);
    const id = newSnapshotId();
    const time = new Date().toISOString();
    const started = Date.now();
    const hookSpec = validateHooks(options.hooks);
    // `pre` runs first: it may freeze the source or create it. A failed one under `fail`
    // has run `post` and throws (nothing read, nothing committed).
    const hooks = hookSpec ? await HookRun.start(hookSpec, options.hooks!, { target, snapshotId: id, store: this.backend.location, storeId: this.config.id }) : undefined;
    if (hooks) source = hooks.wrap(source, options.signal);
    let session: WriterSession;
    try {
      session = await this.beginSession(`${this.options.purpose ?? 'backup'} (target ${target}, snapshot ${id})`, policy.dedupe !== 'deferred');
    } catch (err) {
      await hooks?.close(options.signal?.aborted ? 'aborted' : 'failure');
      throw err;
    }
    let committed = false;
    /** Index writes of this backup's last packs wait for its manifest (ChunkSink.holdIndexing). */
    let releaseIndexing: (() => void) | undefined;
    try {
      if (policy.dedupe === 'deferred') {
        const staged = await stageStream(this.backend, getHasher(this.options.engine ?? 'auto'), id, source, {
          signal: options.signal,
          onProgress: (bytes) => options.onProgress?.({ bytes, chunks: 0, newChunks: 0, newBytes: 0 }),
        });
        const seconds = (Date.now() - started) / 1000;
        let consistency: Consistency;
        try {
          consistency = hooks ? await hooks.settle() : 'crash';
        } catch (err) {
          await dropStaged(this.backend, id, staged).catch(() => {});
          throw err;
        }
        const manifest: SnapshotManifest = {
          version: MANIFEST_VERSION, id, target, time, ...labels, consistency, logicalBytes: staged.bytes, chunks: 0, policy: 'deferred', recipe: null, staging: staged,
          ingest: { newChunks: 0, newBytes: 0, storedBytes: 0, seconds },
        };
        try {
          await session.assertCurrent(`snapshot ${id}`);
          await writeManifest(this.backend, manifest);
          committed = true;
        } catch (err) {
          await dropStaged(this.backend, id, staged).catch(() => {});
          throw err;
        }
        return snapshotInfo(manifest);
      }
      const sink = await this.getSink();
      const delta = await openDeltaStream(this.backend, this.getPool(), this.config, target, policy.delta, (p) => sink.index.isPackExcluded(p), validateIndexChunks(this.options.deltaIndexChunks));
      // The session check (none when the session was written moments ago) runs beside the
      // wait for the packs to be durable; the commit below checks again only when that was
      // long ago (WriterSession.assertFresh).
      const r = await runIngest(sink, this.newChunker(), source, {
        id, policy: policy.dedupe, compression: policy.compression, signal: options.signal, onProgress: options.onProgress, sliceBytes, delta, recipeVersion: recipeVersionFor(this.config),
        whileDurable: () => {
          releaseIndexing = sink.holdIndexing();
          return session.assertFresh(`snapshot ${id}`);
        },
      });
      reportDeltaStats(delta);
      const seconds = (Date.now() - started) / 1000;
      let consistency: Consistency;
      try {
        consistency = hooks ? await hooks.settle() : 'crash';
      } catch (err) {
        await this.backend.delete(r.recipe.name).catch(() => {});
        throw err;
      }
      const manifest: SnapshotManifest = {
        version: MANIFEST_VERSION, id, target, time, ...labels, consistency, logicalBytes: r.recipe.logicalBytes, chunks: r.chunks, policy: policy.dedupe,
        recipe: { name: r.recipe.name, bytes: r.recipe.bytes, blake3: r.recipe.blake3 }, staging: null,
        ingest: { newChunks: r.newChunks, newBytes: r.newBytes, storedBytes: r.storedBytes, seconds },
      };
      try {
        await session.assertFresh(`snapshot ${id}`);
        await writeManifest(this.backend, manifest);
        committed = true;
      } catch (err) {
        await this.backend.delete(r.recipe.name).catch(() => {});
        throw err;
      }
      return snapshotInfo(manifest);
    } finally {
      releaseIndexing?.();
      await hooks?.close(options.signal?.aborted ? 'aborted' : 'failure');
      if (committed) {
        // After the commit, removing the session object is tidying up (endSession never
        // throws): it runs beside what the caller does next; close() waits for it.
        const ending = this.endSession(session);
        this.ending.add(ending);
        void ending.finally(() => this.ending.delete(ending));
      } else await this.endSession(session);
    }
  }

  /** The hooks this machine's hooks file gives a target of this store (src/hooks/config.ts), or undefined. */
  async targetHooks(target: string, file?: string): Promise<HookSpec | undefined> {
    return targetHooks(this.config.id, validateTargetName(target), file);
  }

  private newChunker() {
    const { minSize, avgSize, maxSize, normalization } = this.config.chunker;
    // An encrypted store's fingerprints are keyed BLAKE3 (docs/encryption.md).
    // An encrypted store's cut points come from its own gear table.
    const keys = this.backend instanceof CryptBackend ? this.backend.keys : undefined;
    return createChunker({ minSize, avgSize, maxSize, normalization, ...(keys ? { key: keys.fingerprint, gearKey: keys.gear } : {}) }, { engine: this.options.engine ?? 'auto' });
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
    this.writable('process');
    const session = await this.beginSession(this.options.purpose ?? 'process', true);
    try {
      return await this.processNow(options, session);
    } finally {
      await this.endSession(session);
    }
  }

  private async processNow(options: ProcessOptions, session: WriterSession): Promise<ProcessResult> {
    const started = Date.now();
    let staged = (await this.snapshots()).filter((s) => s.staged);
    if (options.ids) {
      const wanted = new Set(options.ids);
      staged = staged.filter((s) => wanted.has(s.id));
    }
    const sink = await this.getSink();
    await this.sweepProcessedStaging();
    const hasher = getHasher(this.options.engine ?? 'auto');
    const policies = await readPolicies(this.backend);
    const result: ProcessResult = { processed: [], logicalBytes: 0, seconds: 0 };
    for (const [n, snap] of staged.entries()) {
      if (options.signal?.aborted) throw new ChunkyardError('ABORTED', 'process cancelled', { cause: options.signal.reason });
      let manifest: SnapshotManifest;
      try {
        manifest = await readManifest(this.backend, snap.id);
      } catch (err) {
        if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue; // forgotten meanwhile
        throw err;
      }
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
        // v3 in a store with delta: it may reference another stream's delta chunk (and its base).
        recipeVersion: recipeVersionFor(this.config),
      });
      if (r.recipe.logicalBytes !== manifest.logicalBytes) {
        throw new ChunkyardError('CORRUPT', `snapshot ${manifest.id}: processing gave ${r.recipe.logicalBytes} bytes, staging holds ${manifest.logicalBytes}`);
      }
      const seconds = (Date.now() - t0) / 1000;
      await session.assertCurrent(`processing snapshot ${manifest.id}`);
      // Forgotten, or processed by another pass, while this one ran: not written back.
      const now = await readManifest(this.backend, manifest.id).catch(() => undefined);
      if (!now?.staging) {
        await this.backend.delete(r.recipe.name).catch(() => {});
        continue;
      }
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
  async effectivePolicy(target: string, override?: DedupePolicy): Promise<{ dedupe: DedupePolicy; compression: CompressionName; delta: 'on' | 'off' }> {
    this.check();
    validateTargetName(target);
    const p = effectivePolicy(this.config, await readPolicies(this.backend), target, override === undefined ? undefined : validatePolicy(override));
    return { dedupe: p.dedupe, compression: p.compression, delta: p.delta ? 'on' : 'off' };
  }

  /** Per-target settings: every target's, as stored. */
  async policies(): Promise<PolicyFile> {
    this.check();
    return readPolicies(this.backend);
  }

  /**
   * Sets a target's dedupe mode and/or compression for its future backups. With
   * replaceDamaged, a damaged policies.json is first moved to damaged/ and replaced by an
   * empty one (every other target then uses the store defaults); without it, CORRUPT.
   */
  async setPolicy(target: string, change: { dedupe?: DedupePolicy; compression?: CompressionName; delta?: 'on' | 'off' }, options: { replaceDamaged?: boolean } = {}): Promise<PolicyFile> {
    this.check();
    checkOptions('Store.setPolicy', change);
    this.writable('changing policies');
    validateTargetName(target);
    if (change.dedupe !== undefined) validatePolicy(change.dedupe);
    if (change.compression !== undefined) validateCompression(change.compression);
    // The store names the feature before any target may write a delta.
    (this as { config: StoreConfig }).config = await ensureDeltaFeature(this.backend, this.config, change.delta);
    return setTargetPolicy(this.backend, target, change, options);
  }

  /** Replaces a damaged policies.json by an empty one (the old file goes to damaged/); undefined when it is whole. */
  async replaceDamagedPolicies(): Promise<{ damage: string; movedTo: string } | undefined> {
    this.check();
    this.writable('changing policies');
    return replaceDamagedPolicies(this.backend, 'none');
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
      // The latest is the manifest the listing read (not read a second time).
      const matching = await this.manifests({ ...filter, target: idOrTarget }, await listSnapshotIds(this.backend));
      if (matching.length === 0) throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot of target ${JSON.stringify(idOrTarget)} matches ${JSON.stringify(filter)}`);
      return matching[matching.length - 1]!;
    }
    const ids = await listSnapshotIds(this.backend);
    if (/^[0-9a-f]{16}$/.test(idOrTarget) && ids.includes(idOrTarget)) return readManifest(this.backend, idOrTarget);
    const snaps = await this.manifests({ target: idOrTarget }, ids);
    if (snaps.length > 0) return snaps[snaps.length - 1]!;
    if (/^[0-9a-f]{4,16}$/.test(idOrTarget)) {
      const matches = ids.filter((id) => id.startsWith(idOrTarget));
      if (matches.length === 1) return readManifest(this.backend, matches[0]);
      if (matches.length > 1) throw badArgument(`snapshot id prefix ${idOrTarget} is ambiguous (${matches.length} snapshots)`);
    }
    throw new ChunkyardError('SNAPSHOT_NOT_FOUND', `no snapshot or target named ${JSON.stringify(idOrTarget)}`);
  }

  /**
   * Announces a reader (a restore, a replication's source) in the store's sessions/, BEFORE it
   * reads a manifest: a prune beside it names it in its condemnations and deletes nothing it
   * condemns before the reader ends, as for a writer (docs/operations.md, "Restores during
   * prune"). Best effort: where the store cannot be written (read-only media or credentials),
   * resolves undefined and the read goes on without; a prune elsewhere can then make it fail
   * with CHUNK_NOT_FOUND (never with wrong bytes). End it with end(); close() ends the ones
   * still running (a restore stream neither read to its end nor destroyed). @internal
   */
  async announceReader(command: string): Promise<{ end(): Promise<void> } | undefined> {
    this.check();
    let session: WriterSession;
    try {
      session = await WriterSession.start(this.backend, command, { reader: true });
    } catch {
      return undefined;
    }
    this.readers.add(session);
    return {
      end: async () => {
        this.readers.delete(session);
        await session.end();
      },
    };
  }

  /** A verified byte stream of a snapshot, or of [start, end) of it. */
  async restore(idOrTarget: string, options: RestoreOptions = {}): Promise<Readable> {
    checkOptions('Store.restore', options);
    const reader = await this.announceReader(`restore ${idOrTarget}`);
    let cold: Awaited<ReturnType<typeof coldSource>>;
    try {
      const manifest = await this.resolveSnapshot(idOrTarget);
      const { signal, ...range } = options;
      const resolved = resolveRange(range, manifest.logicalBytes);
      cold = await coldSource(await this.tierStoreNow(), manifest, { start: resolved.start ?? 0, end: resolved.end ?? manifest.logicalBytes });
      const stream = abortableStream(await openRestoreStream({ ...this.restoreContext(), cold }, manifest, resolved), signal);
      stream.once('close', () => {
        void cold?.close();
        void reader?.end().catch(() => {});
      });
      return stream;
    } catch (err) {
      await cold?.close();
      await reader?.end().catch(() => {});
      throw err;
    }
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
   * `snapshot` is an id or target (resolved as resolveSnapshot does), or the manifest
   * resolveSnapshot gave (not read again).
   */
  async restoreTo(snapshot: string | SnapshotManifest, destination: Writable | FileHandle, options: RestoreToOptions = {}): Promise<number> {
    this.check();
    checkOptions('Store.restoreTo', options);
    options.signal?.throwIfAborted();
    this.getPool(); // without the addon, its worker boots while the snapshot is looked up
    if (typeof snapshot === 'object' && snapshot !== null && (typeof snapshot.id !== 'string' || typeof snapshot.logicalBytes !== 'number')) throw badArgument('Store.restoreTo: a snapshot id, target, or manifest from resolveSnapshot is required');
    const given = typeof snapshot === 'object' && snapshot !== null ? snapshot : undefined;
    const reader = await this.announceReader(`restore ${given?.id ?? String(snapshot)}`);
    let cold: Awaited<ReturnType<typeof coldSource>>;
    try {
      // A manifest read before the reader was announced may name a recipe a prune has
      // replaced and condemned since, naming no reader: it is read again (one small get).
      const manifest = given ? (reader ? await readManifest(this.backend, given.id) : given) : await this.resolveSnapshot(snapshot as string);
      options = { ...options, ...resolveRange(options, manifest.logicalBytes) };
      cold = await coldSource(await this.tierStoreNow(), manifest, { start: options.start ?? 0, end: options.end ?? manifest.logicalBytes });
      return await this.restoreToWith({ ...this.restoreContext(), cold }, manifest, destination, options);
    } finally {
      await cold?.close();
      await reader?.end().catch(() => {});
    }
  }

  private async restoreToWith(ctx: RestoreContext, manifest: SnapshotManifest, destination: Writable | FileHandle, options: RestoreToOptions): Promise<number> {
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
      // The reads write the file themselves where the addon can (restore.ts, DirectOutput).
      const n = await restoreInto(ctx, manifest, range, abortableSink(sink, options), { fd: destination.fd, position: options.position ?? 0, zeros });
      await sink.finish();
      return n;
    }
    return restoreInto(ctx, manifest, range, abortableSink(writableSink(destination), options));
  }

  /**
   * The store's backend for reading packs: a chunk in an archive pack of the archive tier is
   * read from the archive (the cold packs as listed now; the archive opened on first use).
   * Close it when done. Replication reads its source through this.
   */
  async packReads(): Promise<Backend> {
    return tieredView(await this.tierStoreNow());
  }

  /**
   * tierStore(), after reading config.json again when this Store's copy lacks the archive
   * tier: a first `tier` run (another process) adds the feature while this Store is open (a
   * daemon, a long replication), and its snapshots may then name archive packs.
   */
  private async tierStoreNow(): Promise<TierStore> {
    if (!hasFeature(this.config, ARCHIVE_TIER_FEATURE) && !hasFeature(this.config, ENCRYPTION_FEATURE)) {
      const fresh = await readConfig(this.backend).catch(() => undefined);
      if (fresh && fresh.id === this.config.id && hasFeature(fresh, ARCHIVE_TIER_FEATURE)) (this as { config: StoreConfig }).config = fresh;
    }
    return this.tierStore();
  }

  /** This store as the archive tier sees it (src/tier/store-tier.ts). */
  private tierStore(): TierStore {
    return { backend: this.backend, config: this.config, archiveOpener: this.options.archiveOpener, s3Endpoint: this.options.s3Endpoint };
  }

  /**
   * Moves chunks that only snapshots older than `olderThan` reference into archive packs in
   * the archive tier (remembered after the first call), then points those snapshots at them;
   * the next prune reclaims the hot copies. Holds the maintenance lease. docs/operations.md,
   * "Tiering".
   */
  async tier(options: TierCallOptions): Promise<TierReport> {
    this.check();
    checkOptions('Store.tier', options);
    this.writable('tier');
    const session = await this.beginSession(this.options.purpose ?? 'tier', false);
    try {
      return await runTier(this.tierStore(), session, this.getPool(), options);
    } finally {
      await this.endSession(session);
    }
  }

  /** Which archive packs (ranges, bytes, requests) and hot packs a restore of a snapshot needs. */
  async restorePlan(idOrTarget: string, range: RestoreRange = {}): Promise<RestorePlan> {
    this.check();
    checkOptions('Store.restore', range);
    const manifest = await this.resolveSnapshot(idOrTarget);
    const r = resolveRange(range, manifest.logicalBytes);
    return restorePlan(await this.tierStoreNow(), manifest, { start: r.start ?? 0, end: r.end ?? manifest.logicalBytes });
  }

  private restoreContext(): RestoreContext {
    return { backend: this.backend, pool: this.getPool(), hasher: getHasher(this.options.engine ?? 'auto'), maxSize: this.config.chunker.maxSize };
  }

  /** The snapshots that match `filter` (target, host, tag lists: src/snapshot/info.ts), oldest first. */
  async snapshots(filter: SnapshotFilter = {}): Promise<SnapshotInfo[]> {
    this.check();
    checkOptions('Store.snapshots', filter);
    return (await this.manifests(filter, await listSnapshotIds(this.backend))).map(snapshotInfo);
  }

  /** The readable manifests of `ids` that match `filter`, in snapshots()'s order (oldest first). */
  private async manifests(filter: SnapshotFilter, ids: readonly string[]): Promise<SnapshotManifest[]> {
    const matches = snapshotMatcher(filter);
    const out: SnapshotManifest[] = [];
    for await (const read of readManifests(this.backend, ids)) {
      const { id } = read;
      let m: SnapshotManifest;
      try {
        if (read.error !== undefined) throw read.error;
        m = read.manifest!;
      } catch (err) {
        // Forgotten by another process between the listing and this read: no longer a snapshot.
        if (err instanceof ChunkyardError && err.code === 'SNAPSHOT_NOT_FOUND') continue;
        // One damaged manifest must not hide every other snapshot; it is reported, not dropped.
        if (!(err instanceof ChunkyardError) || (err.code !== 'CORRUPT' && err.code !== 'FORMAT_UNSUPPORTED')) throw err;
        process.emitWarning(`snapshot ${id} is unreadable and left out of the list: ${err.message}`, { code: 'CHUNKYARD_SNAPSHOT_UNREADABLE' });
        continue;
      }
      if (matches(m)) out.push(m);
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }


  /**
   * What the store holds, from the pack tables themselves (table objects; a pack's own table
   * where a table object is missing): `storedBytes` is what the packs take, `uniqueBytes` the
   * raw bytes of every stored chunk copy — what is physically kept, so a store that keeps two
   * copies (the disabled policy) shows a dedupe ratio of 1, not 2. `distinctBytes` counts each
   * fingerprint once (the ratio dedupe alone could reach).
   */
  async stats(): Promise<StoreStats> {
    this.check();
    const snaps = await this.snapshots();
    const logicalBytes = snaps.reduce((s, x) => s + x.logicalBytes, 0);
    const idx = await this.scanPacks();
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
      uniqueBytes: idx.rawBytes,
      distinctBytes: idx.distinctBytes,
      storedBytes: idx.storedBytes,
      dedupeRatio: idx.rawBytes > 0 ? logicalBytes / idx.rawBytes : 0,
      distinctRatio: idx.distinctBytes > 0 ? logicalBytes / idx.distinctBytes : 0,
      reductionRatio: idx.storedBytes + stagingBytes > 0 ? logicalBytes / (idx.storedBytes + stagingBytes) : 0,
      chunks: idx.chunks,
      distinctChunks: idx.distinctChunks,
      packs: idx.packs,
      stagingBytes,
      byTarget,
      byPolicy,
    };
  }

  /**
   * Sums over every pack's table: one table object read per pack. Distinct chunks are counted
   * exactly up to DISTINCT_EXACT_LIMIT fingerprints; beyond that, memory stays bounded by
   * sampling: only fingerprints whose first `shift` bits are zero are kept, and the counts are
   * scaled by 2^shift (fingerprints are uniformly random, so the estimate is unbiased).
   */
  private async scanPacks(): Promise<{ chunks: number; distinctChunks: number; rawBytes: number; distinctBytes: number; storedBytes: number; packs: number }> {
    let shift = 0;
    let seen = new Map<string, number>();
    const stats = { chunks: 0, distinctChunks: 0, rawBytes: 0, distinctBytes: 0, storedBytes: 0, packs: 0 };
    const tables = new Set<string>();
    for await (const o of this.backend.list('tables/')) {
      const id = packIdFromTableName(o.name);
      if (id) tables.add(id.toString('hex'));
    }
    const sampled = (fp: Buffer) => shift === 0 || fp.readUInt32BE(0) >>> (32 - shift) === 0;
    for await (const o of this.backend.list('packs/')) {
      const packId = packIdFromName(o.name);
      if (!packId) continue;
      let entries: { fingerprint: Buffer; rawLength: number }[];
      try {
        entries = tables.has(packId.toString('hex')) ? (await readTableObject(this.backend, packId)).entries : (await readPackTable(this.backend, o.name)).entries;
      } catch (err) {
        if (err instanceof ChunkyardError && err.code === 'OBJECT_NOT_FOUND') continue; // pruned meanwhile
        entries = []; // damaged: its bytes still count as stored; check reports it
      }
      stats.packs++;
      stats.storedBytes += o.size;
      for (const e of entries) {
        stats.chunks++;
        stats.rawBytes += e.rawLength;
        if (!sampled(e.fingerprint)) continue;
        seen.set(e.fingerprint.toString('latin1'), e.rawLength);
        while (seen.size > DISTINCT_EXACT_LIMIT && shift < 24) {
          shift++;
          const kept = new Map<string, number>();
          for (const [k, v] of seen) if (sampled(Buffer.from(k, 'latin1'))) kept.set(k, v);
          seen = kept;
        }
      }
    }
    for (const v of seen.values()) stats.distinctBytes += v;
    stats.distinctChunks = seen.size * 2 ** shift;
    stats.distinctBytes *= 2 ** shift;
    return stats;
  }

  /**
   * Forgets snapshots, by id or by a retention policy per target: deletes their manifests
   * (prune reclaims the data). Needs no session and no lock: it only removes references.
   * docs/operations.md.
   */
  async forget(options: ForgetOptions): Promise<ForgetReport> {
    this.check();
    checkOptions('Store.forget', options);
    if (options.policy !== undefined) checkOptions('Store.forget policy', options.policy);
    this.writable('forget');
    if (options.target !== undefined) validateTargetName(options.target);
    return (await import('../maintenance/forget.js')).forget(this.backend, await this.snapshots(), options);
  }

  /**
   * Reclaims space in two phases, beside running writers: deletes what an earlier prune
   * condemned once every session live at that condemnation has ended and a fresh mark still
   * finds it unreferenced; rewrites mostly-unused packs; condemns what is unreferenced now
   * (deleted at once when no other writer was running). One prune or repair at a time per
   * store (the maintenance lease). docs/operations.md.
   */
  async prune(options: PruneOptions = {}): Promise<PruneReport> {
    this.check();
    checkOptions('Store.prune', options);
    checkRecompress(options.recompress);
    this.writable('prune');
    try {
      return await this.pruneOnce(options);
    } catch (err) {
      // A full disk: the store's reserve (directory stores) gives prune room for its own
      // small objects (session, lease, condemnation record); it is put back afterwards. A
      // prune that failed part-way left the store as a kill would: it is simply run again.
      if (!isNoSpace(err)) throw err;
      if (!(await this.releaseReserve())) {
        throw new ChunkyardError('IO_ERROR', `the disk holding the store is full, and prune needs a few KiB for its session and its record of what it condemns (${(err as Error).message}). Free some space: the store's cache/ folder is only a cache and may be deleted; then run prune again`, { cause: err });
      }
      return await this.pruneOnce(options);
    }
  }

  private async pruneOnce(options: PruneOptions): Promise<PruneReport> {
    const session = await this.beginSession(this.options.purpose ?? 'prune', false);
    try {
      // The index cache is only kept in step with what prune deletes; prune works without it
      // (e.g. when LevelDB cannot open on a full disk): writers confirm every chunk anyway.
      const index = options.dryRun
        ? undefined
        : await this.openIndex().catch((err: Error) => {
            process.emitWarning(`prune runs without this node's index cache (${err.message})`, { code: 'CHUNKYARD_NO_INDEX' });
            return undefined;
          });
      const tier = await pruneTier(await this.tierStoreNow());
      const report = await (await import('../maintenance/prune.js'))
        .prune({ backend: this.backend, index, pool: this.getPool(), packSize: this.config.packSize, session, tier }, options)
        .finally(() => tier?.close());
      if (!options.dryRun) await this.keepReserve();
      return report;
    } finally {
      await this.endSession(session);
    }
  }

  /** Frees the reserve object of a directory store; true when there was one. */
  private async releaseReserve(): Promise<boolean> {
    if (!(plainBackend(this.backend) instanceof FsBackend) || (await this.backend.stat(RESERVE_NAME)) === undefined) return false;
    await this.backend.delete(RESERVE_NAME);
    return true;
  }

  /** Puts the reserve back (best effort: on a disk still full it stays away until the next prune). */
  private async keepReserve(): Promise<void> {
    if (!(plainBackend(this.backend) instanceof FsBackend)) return;
    try {
      if ((await this.backend.stat(RESERVE_NAME)) === undefined) await this.backend.put(RESERVE_NAME, Buffer.alloc(RESERVE_BYTES), { exclusive: true });
    } catch {
      // Not enough room yet: prune deleted nothing, or the disk is shared with other data.
    }
  }

  /**
   * Checks a store's structure (and with readData every chunk) and reports every problem;
   * changes nothing and writes nothing (a read-only copy of a store can be checked), takes
   * no lock and runs beside backups and prune. Static because it must run on stores that
   * Store.open refuses (a damaged config is reported, not thrown).
   */
  static async check(location: StoreLocation, options: CheckOptions & LocationOptions & { threads?: number; engine?: EngineName | 'auto'; purpose?: string; archiveOpener?: ArchiveOpener } = {}): Promise<CheckReport> {
    checkOptions('Store.check', options);
    await initBlake3();
    const raw = typeof location === 'string' ? await openBackend(location, { s3Endpoint: options.s3Endpoint }) : location;
    const errors: Problem[] = [];
    let pool: CompressionPool | undefined;
    let view: Backend | undefined;
    let backend: Backend = raw;
    try {
      backend = await openStoreBackend(raw, options);
      let config: StoreConfig | undefined;
      try {
        config = await readConfig(backend);
      } catch (err) {
        if (!(err instanceof ChunkyardError) || err.code === 'STORE_NOT_FOUND' || err.code === 'IO_ERROR') throw err;
        errors.push({ code: err.code, message: `config.json: ${err.message}` });
      }
      // Only reading data needs the worker pool: do not start threads for nothing.
      if (options.readData) pool = new CompressionPool({ threads: options.threads ?? verifyThreads(), sealing: chunkSealing(backend) });
      // With readData, chunks of archive packs are read from the archive (src/tier/).
      const { archiveOpener, ...checkOpts } = options;
      view = options.readData && config ? await tieredView({ backend, config, archiveOpener, s3Endpoint: options.s3Endpoint }) : backend;
      return await (await import('../maintenance/check.js')).check({ backend: view, pool, hasher: getHasher(options.engine ?? 'auto'), initial: { errors, warnings: [] } }, checkOpts);
    } finally {
      await pool?.close().catch(() => {});
      if (view && view !== backend) await view.close().catch(() => {});
      if (typeof location === 'string') await raw.close();
    }
  }

  /**
   * Salvages damaged packs (moving them aside to damaged/), points recipes at salvaged or
   * other copies, rewrites missing pack table objects, and reports the snapshots that still
   * lack chunks; never removes a snapshot. Runs beside writers, one repair or prune at a
   * time. Static for the same reason as check. A damaged config.json is not repaired
   * (restore it from a copy).
   */
  static async repair(location: StoreLocation, options: RepairOptions & LocationOptions & { threads?: number; purpose?: string; cacheDir?: string } = {}): Promise<RepairReport> {
    checkOptions('Store.repair', options);
    const store = await Store.open(location, { s3Endpoint: options.s3Endpoint, threads: options.threads, purpose: options.purpose ?? 'repair', cacheDir: options.cacheDir, ...keyOptionsOf(options) });
    try {
      store.writable('repair');
      const session = await store.beginSession(options.purpose ?? 'repair', false);
      // Repair builds its index from the packs it finds readable, in a folder of its own
      // (this node's cache slots stay as they are; they confirm what they use anyway).
      await sweepStaleRepairDirs();
      const dir = await mkdtemp(join(tmpdir(), `${REPAIR_DIR_PREFIX}${process.pid}-`));
      let index: FingerprintIndex | undefined;
      try {
        index = await FingerprintIndex.open(dir, store.backend, { refresh: false });
        return await (await import('../maintenance/repair.js')).repair({ backend: store.backend, pool: store.getPool(), index, packSize: store.config.packSize, session }, options);
      } finally {
        await index?.close().catch(() => {});
        await rm(dir, { recursive: true, force: true });
        await store.endSession(session);
      }
    } finally {
      await store.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Index writes of packs already durable (ChunkSink.seal) finish before the index closes.
    const index = this.indexOpening?.catch(() => undefined).then(async (i) => {
      await this.sink?.idle();
      return i;
    });
    // The pool and the index have nothing to do with each other: close them side by side.
    const readers = [...this.readers].map((r) => r.end());
    this.readers.clear();
    const closed = await Promise.allSettled([this.pool?.close(), index?.then((i) => i?.close()), ...this.ending, ...readers]);
    if (this.ownsBackend) await this.backend.close();
    const failed = closed.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/**
 * Repair's scratch index lives in the temporary directory, named after the repairing process.
 * A repair killed with SIGKILL cannot remove it, and an index of a large store is large, so
 * the next repair removes the folders whose process is gone.
 */
const REPAIR_DIR_PREFIX = 'chunkyard-repair-';

async function sweepStaleRepairDirs(): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(REPAIR_DIR_PREFIX)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(REPAIR_DIR_PREFIX.length))?.[1]);
    // Folders from builds that did not name the process are left alone: their owner is unknown.
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * A directory store keeps `reserve` (RESERVE_BYTES of zeros) so that prune, whose job is to
 * free space, can run on a full disk: it deletes the reserve to make room for its session,
 * lease and condemnation record, and puts it back when it is done.
 */
const RESERVE_NAME = 'reserve';
const RESERVE_BYTES = 1 << 20;

function isNoSpace(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
  return false;
}

/**
 * How stale a long-running writer's index cache may get before a new session lists tables/
 * again: other writers' packs become dedupe candidates within this time (the open refreshes).
 */
const INDEX_REFRESH_MS = 30_000;

/** Fingerprints `stats` counts exactly (about 100 MiB of memory); beyond, it samples. */
const DISTINCT_EXACT_LIMIT = 1 << 20;

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

/** The chunk keys of an encrypted store's backend, for its compression pool. @internal */
export function chunkSealing(backend: Backend): { chunkKey: Uint8Array; fingerprintKey: Uint8Array } | undefined {
  return backend instanceof CryptBackend ? { chunkKey: backend.keys.chunk, fingerprintKey: backend.keys.fingerprint } : undefined;
}
