import type { ChunkLocation } from '../pack/format.js';

export type { ChunkLocation };


export interface IndexStats {
  /** Distinct chunks indexed. */
  chunks: number;
  /** Sum of the raw lengths of the distinct chunks. */
  uniqueBytes: number;
  /** Sum of the sizes of all indexed pack files. */
  storedBytes: number;
  packs: number;
}
