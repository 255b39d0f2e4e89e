/**
 * Restores that need the archive tier: the plan (`restore --plan`) and the cold source that
 * reads each archive pack ONCE.
 *
 * The plan is one pass over the recipe (hot metadata only): for every archive pack the
 * restore needs, the byte range from its first needed chunk to the end of its last, in the
 * order the stream first needs them. The cold source fetches each range with one request
 * (two at a time, in that order) into a spool file as it arrives, and the restore (src/store/
 * restore.ts, the window planner of src/restore/) reads its archive chunks from the spool as
 * soon as the bytes each read needs are there, hot chunks straight from the hot tier. Memory stays that of an ordinary restore; the spool takes disk space up to the archive
 * bytes of the plan (in $TMPDIR; removed when the restore ends).
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../backend/types.js';
import { ChunkyardError } from '../errors.js';
import type { SnapshotManifest } from '../snapshot/manifest.js';
import { RecipeReader } from '../snapshot/recipe.js';
import { packObjectName } from '../util/ids.js';
import type { ColdPack } from './cold.js';

export interface PlannedArchiveRead {
  /** Pack id (hex) and object name in the archive. */
  pack: string;
  name: string;
  /** The one ranged read: bytes [start, end) of the archive pack. */
  start: number;
  end: number;
  /** Chunk references served from it. */
  chunks: number;
}

export interface RestorePlan {
  snapshot: string;
  /** Stream bytes the restore produces. */
  bytes: number;
  hot: { packs: number; chunks: number; storedBytes: number };
  archive: { packs: PlannedArchiveRead[]; chunks: number; bytes: number; requests: number };
}

/** The plan of restoring [start, end) of a snapshot (whole by default). */
export async function planRestore(hot: Backend, cold: Map<string, ColdPack>, manifest: SnapshotManifest, range: { start: number; end: number } = { start: 0, end: manifest.logicalBytes }): Promise<RestorePlan> {
  const plan: RestorePlan = { snapshot: manifest.id, bytes: Math.max(0, range.end - range.start), hot: { packs: 0, chunks: 0, storedBytes: 0 }, archive: { packs: [], chunks: 0, bytes: 0, requests: 0 } };
  if (!manifest.recipe || range.start >= range.end) return plan;
  const reader = await RecipeReader.open(hot, manifest.recipe.name, { expect: manifest.recipe });
  const archive = new Map<string, PlannedArchiveRead>();
  const hotPacks = new Set<string>();
  for await (const block of reader.entries(range.start)) {
    for (const e of block) {
      if (e.streamOffset >= range.end) break;
      if (e.streamOffset + e.rawLength <= range.start) continue;
      const hex = e.packId.toString('hex');
      if (cold.has(hex)) {
        let r = archive.get(hex);
        if (!r) {
          r = { pack: hex, name: packObjectName(e.packId), start: e.offset, end: e.offset + e.storedLength, chunks: 0 };
          archive.set(hex, r);
        }
        r.start = Math.min(r.start, e.offset);
        r.end = Math.max(r.end, e.offset + e.storedLength);
        r.chunks++;
        plan.archive.chunks++;
      } else {
        hotPacks.add(hex);
        plan.hot.chunks++;
        plan.hot.storedBytes += e.storedLength;
      }
    }
  }
  plan.hot.packs = hotPacks.size;
  plan.archive.packs = [...archive.values()];
  plan.archive.bytes = plan.archive.packs.reduce((s, r) => s + (r.end - r.start), 0);
  plan.archive.requests = plan.archive.packs.length;
  return plan;
}

/** Archive reads a restore may fetch at once. */
export const ARCHIVE_FETCHES = 2;

/** What the restore asks (src/store/restore.ts RestoreContext.cold). */
export interface ColdSource {
  has(packName: string): boolean;
  read(packName: string, start: number, end: number): Promise<Uint8Array>;
}

/** One planned archive read in progress: bytes arrive in order into its spool file. */
interface Fetch {
  read: PlannedArchiveRead;
  file?: string;
  /** Bytes of the range in the spool file so far. */
  received: number;
  done: boolean;
  error?: unknown;
  waiters: (() => void)[];
}

/**
 * Fetches the plan's archive ranges once each, in order, into a spool; serves reads from it
 * as soon as the bytes a read needs have arrived (not only when the whole pack is there), so
 * output flows while a large archive pack is still coming.
 */
export class ColdSpool implements ColdSource {
  readonly #fetches = new Map<string, Fetch>();
  #dir: Promise<string> | undefined;
  #closed = false;
  #running: Promise<void> | undefined;
  /** Archive requests made (each pack once). */
  requests = 0;

  constructor(
    private readonly archive: () => Promise<Backend>,
    plan: RestorePlan,
    private readonly spoolRoot = tmpdir(),
  ) {
    for (const r of plan.archive.packs) this.#fetches.set(r.name, { read: r, received: 0, done: false, waiters: [] });
  }

  /** Starts fetching, ARCHIVE_FETCHES at a time, in the order the stream needs the packs. */
  start(): void {
    const queue = [...this.#fetches.values()];
    const worker = async (): Promise<void> => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        try {
          if (this.#closed) throw new ChunkyardError('ABORTED', 'restore ended');
          await this.#fetch(f);
          f.done = true;
        } catch (err) {
          f.error = err;
        }
        for (const w of f.waiters.splice(0)) w();
      }
    };
    this.#running = Promise.all(Array.from({ length: ARCHIVE_FETCHES }, worker)).then(() => {});
  }

  has(packName: string): boolean {
    return this.#fetches.has(packName);
  }

  async #fetch(f: Fetch): Promise<void> {
    this.#dir ??= mkdtemp(join(this.spoolRoot, 'chunkyard-spool-'));
    const file = join(await this.#dir, f.read.pack);
    let archive: Backend;
    try {
      archive = await this.archive();
    } catch (err) {
      throw new ChunkyardError('ARCHIVE_UNAVAILABLE', `the restore needs archive pack ${f.read.name}, and the archive cannot be reached: ${(err as Error).message}`, { cause: err });
    }
    const h = await open(file, 'w');
    f.file = file;
    try {
      this.requests++;
      for await (const chunk of archive.getStream(f.read.name, { start: f.read.start, end: f.read.end })) {
        if (this.#closed) throw new ChunkyardError('ABORTED', 'restore ended');
        const b = chunk as Buffer;
        let done = 0;
        while (done < b.length) done += (await h.write(b, done, b.length - done, f.received + done)).bytesWritten;
        f.received += b.length;
        for (const w of f.waiters.splice(0)) w();
      }
    } finally {
      await h.close();
    }
    if (f.received !== f.read.end - f.read.start) throw new ChunkyardError('CHUNK_NOT_FOUND', `archive pack ${f.read.name} ended after ${f.received} of ${f.read.end - f.read.start} planned bytes (from offset ${f.read.start})`);
  }

  async read(packName: string, start: number, end: number): Promise<Uint8Array> {
    const f = this.#fetches.get(packName);
    if (!f) throw new ChunkyardError('CHUNK_NOT_FOUND', `archive pack ${packName} was not in the restore's plan`);
    const r = f.read;
    const from = start - r.start;
    const length = Math.min(end, r.end) - start;
    if (from < 0 || length < 0) throw new ChunkyardError('CHUNK_NOT_FOUND', `archive pack ${packName}: bytes ${start}..${end} are outside the planned read`);
    while (!f.done && f.error === undefined && f.received < from + length) await new Promise<void>((resolve) => f.waiters.push(resolve));
    if (f.error !== undefined && f.received < from + length) throw f.error;
    const out = Buffer.allocUnsafeSlow(length);
    const h = await open(f.file!, 'r');
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await h.read(out, done, length - done, from + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return out.subarray(0, done);
    } finally {
      await h.close();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#running?.catch(() => {});
    if (this.#dir) await rm(await this.#dir.catch(() => ''), { recursive: true, force: true }).catch(() => {});
  }
}
