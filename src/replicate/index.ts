/** Replication between stores (src/replicate/replicate.ts). */
export { replicate, chunkerMismatch, verifyReplica, REPLICA_OF_KEY } from './replicate.js';
export type { ReplicateOptions, ReplicateProgress, ReplicateReport, ReplicateDestinationReport, ReplicaLocation } from './replicate.js';
export { RateLimiter } from './rate-limit.js';
