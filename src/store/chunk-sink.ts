/**
 * Where new chunks go, shared by every backup running in this process: the fingerprint
 * index, the in-flight set, the compression pool and the pack writers.
 *
 * The in-flight set holds chunks accepted as new but not yet indexed (compressing, in an
 * open pack, or in a pack being sealed). A second stream meeting such a chunk references it
 * instead of storing it again, and its snapshot commits only after that pack is durable and
 * indexed. A chunk is always either in flight or findable in the index's cache, never neither:
 * a pack's chunks leave the in-flight set only after index.addPack has cached them.
 */
import type { Backend } from '../backend/types.js';
import type { CompressionPool } from '../compress/pool.js';
import { FingerprintIndex, fpKey } from '../fingerprints/fingerprint-index.js';
import type { ChunkLocation } from '../pack/format.js';
import { PackWriter, type SealedPack } from '../pack/writer.js';
import { deferred, type Deferred } from '../util/async.js';

export interface InflightChunk {
  /** Resolves when the chunk has been appended to a pack. */
  location: Deferred<ChunkLocation>;
  /** Resolves once the chunk's pack is durable and indexed (OpenPack.durable). */
  durable: Deferred<void>;
  /** Set once appended to a pack: from then on the pack's fate is the chunk's. */
  placed: boolean;
  /** The pack it was appended to (once placed). */
  pack?: OpenPack;
  /** Set before placing when it is stored as a delta (codec 3): its base (src/delta/). */
  deltaBase?: { fingerprint: Buffer; location: ChunkLocation };
}

/** A pack being filled by one stream, with the promises of its sealing. */
export class OpenPack {
  /**
   * Resolves once the pack and its table object are durable: a commit (a manifest) may name
   * it from then on. A backup waits for this only (runIngest).
   */
  readonly stored: Deferred<void> = deferred<void>();
  /**
   * Resolves once it is also in this process's index cache, so that look-ups find its
   * chunks: what the daemon's answers and replication wait for (ChunkSink.seal).
   */
  readonly durable: Deferred<void> = deferred<void>();
  readonly keys: string[] = [];
  /**
   * Set when sealing starts. The owning stream checks it before every append and opens a new
   * pack instead; another stream may seal a pack early (see ChunkSink.seal).
   */
  sealing = false;
  constructor(readonly writer: PackWriter) {}
}

/** The longest an index write waits for the commits that hold it (ChunkSink.holdIndexing). */
const INDEX_HOLD_MAX_MS = 2_000;

export class ChunkSink {
  private readonly inflight = new Map<string, InflightChunk>();

  constructor(readonly backend: Backend, readonly index: FingerprintIndex, readonly pool: CompressionPool, readonly packSize: number) {}

  /** A chunk already accepted as new and not yet in the index, or one the index has in RAM. */
  findInflight(fp: Buffer): InflightChunk | undefined {
    return this.inflight.get(fpKey(fp));
  }

  /** Registers a chunk as new; returns undefined when another stream registered it first. */
  claim(fp: Buffer): InflightChunk | undefined {
    const key = fpKey(fp);
    if (this.inflight.has(key)) return undefined;
    const entry: InflightChunk = { location: deferred<ChunkLocation>(), durable: deferred<void>(), placed: false };
    this.inflight.set(key, entry);
    return entry;
  }

  /** Forgets a claim whose chunk will never be written (its stream failed before the pack). */
  release(fp: Buffer, err: unknown): void {
    const key = fpKey(fp);
    const entry = this.inflight.get(key);
    if (!entry || entry.placed) return;
    this.inflight.delete(key);
    entry.location.reject(err);
    entry.durable.reject(err);
  }

  /** Records that a claimed chunk now lives in `pack` at `location`. */
  placed(fp: Buffer, entry: InflightChunk, pack: OpenPack, location: ChunkLocation): void {
    pack.keys.push(fpKey(fp));
    entry.placed = true;
    entry.pack = pack;
    entry.location.resolve(location);
    pack.durable.promise.then(entry.durable.resolve, entry.durable.reject);
  }

  async openPack(): Promise<OpenPack> {
    return new OpenPack(await PackWriter.create(this.backend));
  }

  /** Index writes of sealed packs still running (their packs are durable already). */
  private readonly indexing = new Set<Promise<void>>();

  /**
   * Seals a pack: once it and its table object are durable, `pack.stored` resolves, and what
   * references the pack may commit. The pack is then indexed (a cache: src/fingerprints/);
   * only after that do its chunks leave the in-flight set, so that a chunk stays findable
   * throughout, and `pack.durable` (the promise returned) resolves. Idempotent.
   *
   * Any stream may seal any open pack: a stream ready to commit seals the packs of other
   * streams that hold chunks it reused, so it never waits on a slow or stalled stream. This
   * is safe because appends are synchronous up to the queued write: an append that started
   * before `sealing` was set is in the table, and the owner starts a new pack for the next.
   */
  seal(pack: OpenPack): Promise<void> {
    this.sealStored(pack).catch(() => {});
    return pack.durable.promise;
  }

  /** seal(), resolving as soon as the pack and its table object are durable (OpenPack.stored). */
  sealStored(pack: OpenPack): Promise<void> {
    if (!pack.sealing) {
      pack.sealing = true;
      this.sealNow(pack).catch(() => {});
    }
    return pack.stored.promise;
  }

  private readonly holds = new Set<Promise<void>>();

  /**
   * Index writes of packs sealed from now on wait until the returned function is called (or
   * INDEX_HOLD_MAX_MS passed): a backup holds them from its last chunk to its manifest.
   */
  holdIndexing(): () => void {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    this.holds.add(hold);
    return () => {
      this.holds.delete(hold);
      release();
    };
  }

  private async afterHolds(): Promise<void> {
    if (this.holds.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, INDEX_HOLD_MAX_MS)));
    await Promise.race([Promise.all([...this.holds]), timeout]);
    clearTimeout(timer);
  }

  /**
   * Resolves when every index write started so far is done (Store.close awaits it before
   * closing the index; a failed one was a warning).
   */
  async idle(): Promise<void> {
    while (this.indexing.size > 0) await Promise.allSettled([...this.indexing]);
  }

  private async sealNow(pack: OpenPack): Promise<void> {
    let sealed: SealedPack;
    try {
      sealed = await pack.writer.seal();
    } catch (err) {
      for (const k of pack.keys) {
        const entry = this.inflight.get(k);
        this.inflight.delete(k);
        entry?.location.reject(err);
        entry?.durable.reject(err);
      }
      pack.stored.reject(err);
      pack.durable.reject(err);
      throw err;
    }
    // The pack and its table object are durable: a manifest may name the pack from now on.
    // The index is a cache of the table objects (an open lists tables/ and indexes what it
    // lacks), so a backup's commit does not wait for its synced write.
    pack.stored.resolve();
    // A stream writing its manifest goes first: the index's synced write would share the
    // disk's journal commits with it (holdIndexing).
    const indexing = this.afterHolds().then(() => this.index.addPack(sealed)).then(
      () => {
        for (const k of pack.keys) this.inflight.delete(k);
        pack.durable.resolve();
      },
      (err: Error) => {
        // Not findable now: a later stream stores these chunks again (dedupe lost, nothing
        // wrong); what waits for the index (the daemon, replication) gets the error.
        for (const k of pack.keys) this.inflight.delete(k);
        pack.durable.reject(err);
        process.emitWarning(`pack ${sealed.packId.toString('hex')} was stored but not added to the index cache (${err.message}); the next open adds it from tables/`, { code: 'CHUNKYARD_INDEX_NOT_UPDATED' });
      },
    );
    this.indexing.add(indexing);
    void indexing.finally(() => this.indexing.delete(indexing));
  }
}
