/**
 * Read planning for restores (the forward assembly area of Lillibridge, Eshghi and Bhagwat,
 * FAST 2013): the recipe is cut into windows of up to one assembly area of output bytes;
 * within a window, the chunks to read are grouped per pack, sorted by offset and coalesced
 * into few large reads, whatever order the stream needs them in. Each read decodes its
 * chunks straight into their places in the area, so the output fills in order from reads
 * made out of order, and memory stays bounded by the areas, not by the recipe.
 *
 * A later generation of a backup series alternates between old and new packs; read in
 * stream order that is one small read per run of chunks, planned per window it is about one
 * read per pack per window.
 */
import type { RecipeEntry } from '../snapshot/recipe.js';
import { CODEC_DELTA } from '../pack/codecs.js';

/** A chunk to decode into the area at `dest` (bytes from the window's start). */
export interface PlannedPiece {
  entry: RecipeEntry;
  dest: number;
}

/** One ranged read of a pack: bytes [start, end), its pieces in pack order. */
export interface PlannedRead {
  packId: Buffer;
  start: number;
  end: number;
  pieces: PlannedPiece[];
}

/** A run of output of the window: area bytes [from, to), or one chunk served from memory. */
export type OutputSegment = { kind: 'area'; from: number; to: number } | { kind: 'repeat'; entry: RecipeEntry; dest: number };

export interface WindowPlan {
  /** Stream offset of the window's first byte (its first entry's offset). */
  streamStart: number;
  /** Output bytes of the window (the sum of its entries' raw lengths). */
  bytes: number;
  reads: PlannedRead[];
  /** Area copies for chunks that occur again in the window: [from, to, length]. */
  copies: [number, number, number][];
  /** Chunks that occur again but are served from the repeat cache (zero runs): not in `reads`. */
  repeats: PlannedPiece[];
  /** The window's output, in order. */
  segments: OutputSegment[];
}

export interface PlanLimits {
  /** Stored bytes of one read at most (a single larger chunk is read alone). */
  maxReadBytes: number;
  /** Unneeded stored bytes read through between two needed chunks of a pack. */
  maxGapBytes: number;
}

/**
 * Chunks that compress very well and recur (zero runs in disk images, padding) are kept
 * decoded in a cache across windows: each occurrence is a view of the cached bytes, neither
 * read nor copied, and a file sink sees it as its own run (fallocate for zeros).
 */
export function isRepeatCandidate(e: RecipeEntry): boolean {
  // A delta (codec 3) is small because of its base, not because it recurs.
  return e.storedLength * 8 <= e.rawLength && e.codec !== CODEC_DELTA;
}

/**
 * Plans one window. `cached(e)` says whether a repeat candidate is already decoded in
 * memory (then it is not read again).
 */
export function planWindow(entries: RecipeEntry[], limits: PlanLimits, cached: (e: RecipeEntry) => boolean): WindowPlan {
  const streamStart = entries[0]!.streamOffset;
  /** First occurrence of each stored chunk in the window: its place in the area. */
  const firstDest = new Map<string, number>();
  const byPack = new Map<string, PlannedPiece[]>();
  const copies: [number, number, number][] = [];
  const repeats: PlannedPiece[] = [];
  const segments: OutputSegment[] = [];
  const repeatSeen = new Set<string>();
  /** Whether the last segment is a run of ordinary chunks that the next one may extend. */
  let extendable = false;
  for (const entry of entries) {
    const dest = entry.streamOffset - streamStart;
    const packKey = entry.packId.toString('latin1');
    if (isRepeatCandidate(entry)) {
      // Its own segment: the first occurrence decodes into the area, every later one (in
      // this window or a later one) is a view of the cached copy.
      const fp = entry.fingerprint.toString('latin1');
      extendable = false;
      if (repeatSeen.has(fp) || cached(entry)) {
        repeats.push({ entry, dest });
        segments.push({ kind: 'repeat', entry, dest });
        continue;
      }
      repeatSeen.add(fp);
      segments.push({ kind: 'area', from: dest, to: dest + entry.rawLength });
    } else {
      const last = segments[segments.length - 1];
      if (extendable && last?.kind === 'area') last.to = dest + entry.rawLength;
      else segments.push({ kind: 'area', from: dest, to: dest + entry.rawLength });
      extendable = true;
    }
    const where = `${packKey}:${entry.offset}`;
    const seen = firstDest.get(where);
    if (seen !== undefined) {
      copies.push([seen, dest, entry.rawLength]);
      continue;
    }
    firstDest.set(where, dest);
    let list = byPack.get(packKey);
    if (!list) byPack.set(packKey, (list = []));
    list.push({ entry, dest });
  }
  const reads: PlannedRead[] = [];
  for (const pieces of byPack.values()) {
    pieces.sort((a, b) => a.entry.offset - b.entry.offset);
    let read: PlannedRead | undefined;
    for (const p of pieces) {
      const e = p.entry;
      const pEnd = e.offset + e.storedLength;
      if (read && e.offset >= read.end && e.offset - read.end <= limits.maxGapBytes && pEnd - read.start <= limits.maxReadBytes) {
        read.end = pEnd;
        read.pieces.push(p);
        continue;
      }
      if (read) reads.push(read);
      read = { packId: e.packId, start: e.offset, end: pEnd, pieces: [p] };
    }
    if (read) reads.push(read);
  }
  // Reads that hold the window's first bytes go first: the window completes no sooner than
  // its last read, but an error in its first chunk is found early.
  const firstByte = new Map(reads.map((r) => [r, Math.min(...r.pieces.map((p) => p.dest))]));
  reads.sort((a, b) => firstByte.get(a)! - firstByte.get(b)!);
  const last = entries[entries.length - 1]!;
  return { streamStart, bytes: last.streamOffset + last.rawLength - streamStart, reads, copies, repeats, segments };
}

/**
 * Cuts a stream of recipe blocks into windows of at most `windowBytes` output bytes (a
 * single larger chunk makes a window of its own), from the entry holding byte `start` to
 * the one holding byte `end − 1`.
 */
export async function* windows(blocks: AsyncIterable<RecipeEntry[]>, end: number, windowBytes: number): AsyncGenerator<RecipeEntry[]> {
  let current: RecipeEntry[] = [];
  let bytes = 0;
  for await (const block of blocks) {
    for (const e of block) {
      if (e.streamOffset >= end) {
        if (current.length > 0) yield current;
        return;
      }
      if (current.length > 0 && bytes + e.rawLength > windowBytes) {
        yield current;
        current = [];
        bytes = 0;
      }
      current.push(e);
      bytes += e.rawLength;
    }
    // Done once the range is covered: the next block of the recipe is not even read.
    const last = block[block.length - 1];
    if (last && last.streamOffset + last.rawLength >= end) break;
  }
  if (current.length > 0) yield current;
}
