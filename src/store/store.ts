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
import type { Readable } from 'node:stream';
import type { Backend } from '../backend/types.js';
import { openFsBackend } from '../backend/fs.js';
import { createChunker, resolveChunkerParams } from '../chunking/index.js';
import type { EngineName } from '../chunking/types.js';
import { CompressionPool } from '../compress/pool.js';
import type { CompressionName } from '../compress/messages.js';
import { ChunkyardError, badArgument } from '../errors.js';
import { FingerprintIndex, readIndexSummary } from '../index/fingerprint-index.js';
import type { IndexStats } from '../index/types.js';
import { readPackTable } from '../pack/reader.js';
import { listSnapshotIds, readManifest, validatePolicy, validateTargetName, type DedupePolicy, type SnapshotManifest } from '../snapshot/manifest.js';
import { initBlake3 } from '../util/blake3.js';
import { runBackup, type BackupProgress, type BackupResult } from './backup.js';
import { ChunkSink } from './chunk-sink.js';
import { newConfig, readConfig, validateCompression, writeConfig, type StoreConfig } from './config.js';
import { acquireWriterLock, type WriterLock } from './lock.js';
import { restoreStream, type RestoreRange } from './restore.js';

export type { BackupProgress, BackupResult, RestoreRange, SnapshotManifest, DedupePolicy, StoreConfig };

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
  /** Chunking engine (default: native when it loads). */
  engine?: EngineName | 'auto';
  /** Compression worker threads (default: number of cores). */
  threads?: number;
  /** Command line or purpose recorded in the lock file, for the STORE_LOCKED message. */
  purpose?: string;
}

export interface BackupCallOptions {
  target: string;
  /** Dedupe policy for this stream (default: the store's). */
  policy?: DedupePolicy;
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
}

export interface SnapshotInfo {
  id: string;
  target: string;
  time: string;
  logicalBytes: number;
  policy: DedupePolicy;
  chunks: number;
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
    await initBlake3();
    const root = resolve(path);
    const backend = await openFsBackend(root);
    let lock: WriterLock | undefined;
    let index: FingerprintIndex | undefined;
    try {
      const config = await readConfig(backend);
      if (!options.readOnly) {
        lock = await acquireWriterLock(root, { command: options.purpose ?? 'chunkyard' });
        index = await FingerprintIndex.open(join(root, 'index'), backend);
      }
      return new Store(root, backend, config, options, lock, index);
    } catch (err) {
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

  /** Backs up one stream; resolves with the committed snapshot once it is durable. */
  async backup(source: Readable | AsyncIterable<Uint8Array>, options: BackupCallOptions): Promise<BackupResult> {
    this.check();
    const target = validateTargetName(options.target);
    const policy = validatePolicy(options.policy ?? this.config.dedupe);
    if (policy === 'deferred') throw badArgument('the deferred policy is not available yet in this build');
    if (!this.index) throw badArgument('the store was opened read-only; open it without readOnly to back up');
    this.sink ??= new ChunkSink(this.backend, this.index, this.getPool(), this.config.packSize);
    const { minSize, avgSize, maxSize, normalization } = this.config.chunker;
    const chunker = await createChunker({ minSize, avgSize, maxSize, normalization }, { engine: this.options.engine ?? 'auto' });
    return runBackup(this.sink, chunker, source, { target, policy, compression: this.config.compression, signal: options.signal, onProgress: options.onProgress });
  }

  /**
   * Resolves, in this order: a full snapshot id (16 hex digits); a target name (its latest
   * snapshot); a unique id prefix of at least 4 hex digits.
   */
  async resolveSnapshot(idOrTarget: string): Promise<SnapshotManifest> {
    this.check();
    if (typeof idOrTarget !== 'string' || idOrTarget.length === 0) throw badArgument('a snapshot id or target name is required');
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
  async restore(idOrTarget: string, range: RestoreRange = {}): Promise<Readable> {
    const manifest = await this.resolveSnapshot(idOrTarget);
    return restoreStream(this.backend, this.getPool(), manifest, range);
  }

  async snapshots(filter: { target?: string } = {}): Promise<SnapshotInfo[]> {
    this.check();
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
      if (filter.target !== undefined && m.target !== filter.target) continue;
      out.push({ id: m.id, target: m.target, time: m.time, logicalBytes: m.logicalBytes, policy: m.policy, chunks: m.chunks });
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  async stats(): Promise<StoreStats> {
    this.check();
    const snaps = await this.snapshots();
    const logicalBytes = snaps.reduce((s, x) => s + x.logicalBytes, 0);
    const idx = this.index?.getStats() ?? (await readIndexSummary(join(this.path, 'index'))) ?? (await this.scanPacks());
    return {
      snapshots: snaps.length,
      logicalBytes,
      uniqueBytes: idx.uniqueBytes,
      storedBytes: idx.storedBytes,
      dedupeRatio: idx.uniqueBytes > 0 ? logicalBytes / idx.uniqueBytes : 0,
      reductionRatio: idx.storedBytes > 0 ? logicalBytes / idx.storedBytes : 0,
      chunks: idx.chunks,
      packs: idx.packs,
      stagingBytes: 0,
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool?.close();
    await this.index?.close();
    await this.lock?.release();
    await this.backend.close();
  }
}
