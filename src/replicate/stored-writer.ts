/**
 * Writes chunks that arrive already in their stored form (replication, the daemon's chunk
 * upload) into new packs of a store, through its chunk sink: a chunk the store (or another
 * stream of this process) already holds is not written again; new packs are sealed, their
 * table objects written and indexed before finish() resolves.
 */
import type { ChunkLocation, CodecId } from '../pack/format.js';
import type { InflightChunk, OpenPack } from '../store/chunk-sink.js';
import type { ReplicaWriter } from '../store/store.js';

export class StoredChunkWriter {
  private pack: OpenPack | undefined;
  private sealing: Promise<void> | undefined;
  private readonly waits: Promise<void>[] = [];

  constructor(private readonly w: ReplicaWriter) {}

  /**
   * Stores one chunk as given unless the store has it; resolves true when it was written.
   * `stored` is copied. The caller has verified it against `fingerprint` when it must.
   */
  async add(fingerprint: Buffer, stored: Uint8Array, rawLength: number, codec: CodecId, known?: ChunkLocation): Promise<boolean> {
    const sink = this.w.sink;
    if (known) return false;
    const inflight = sink.findInflight(fingerprint);
    if (inflight) {
      this.waits.push(inflight.durable.promise);
      return false;
    }
    const claim = sink.claim(fingerprint) as InflightChunk;
    try {
      if (this.pack?.sealing) this.pack = undefined;
      this.pack ??= await sink.openPack();
      const pack = this.pack;
      const offset = await pack.writer.append(fingerprint, Buffer.from(stored), rawLength, codec);
      sink.placed(fingerprint, claim, pack, { packId: pack.writer.packId, offset, storedLength: stored.length, rawLength, codec });
      this.waits.push(claim.durable.promise);
      if (pack.writer.size >= sink.packSize) {
        await this.sealing;
        this.pack = undefined;
        this.sealing = sink.seal(pack);
        this.sealing.catch(() => {});
      }
      return true;
    } catch (err) {
      sink.release(fingerprint, err);
      throw err;
    }
  }

  /** Seals the open pack; resolves when every chunk added (or found in flight) is durable. */
  async finish(): Promise<void> {
    if (this.pack && !this.pack.sealing && this.pack.writer.count > 0) this.waits.push(this.w.sink.seal(this.pack));
    this.pack = undefined;
    await Promise.all(this.waits);
    this.waits.length = 0;
  }

  /** After a failure: keeps what was written (sealed, useful to the next attempt), best effort. */
  async abandon(): Promise<void> {
    if (this.pack && !this.pack.sealing && this.pack.writer.count > 0) await this.w.sink.seal(this.pack).catch(() => {});
    this.pack = undefined;
    await Promise.allSettled(this.waits);
  }
}
