import type { CodecId } from '../pack/format.js';

/** Where a stored chunk lives. */
export interface ChunkLocation {
  packId: Buffer; // 16 bytes
  offset: number;
  storedLength: number;
  rawLength: number;
  codec: CodecId;
}

export interface IndexStats {
  /** Distinct chunks indexed. */
  chunks: number;
  /** Sum of the raw lengths of the distinct chunks. */
  uniqueBytes: number;
  /** Sum of the sizes of all indexed pack files. */
  storedBytes: number;
  packs: number;
}
