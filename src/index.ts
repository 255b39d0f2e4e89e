/** chunkyard's public API. docs/api.md describes it with examples. */
export { Store } from './store/store.js';
export type {
  InitOptions,
  OpenOptions,
  BackupCallOptions,
  BackupResult,
  BackupProgress,
  SnapshotInfo,
  SnapshotFilter,
  StoreStats,
  UsageBreakdown,
  RestoreRange,
  RestoreOptions,
  RestoreToOptions,
  RestoreProgress,
  ProcessOptions,
  ProcessProgress,
  ProcessResult,
  SnapshotManifest,
  DedupePolicy,
  StoreConfig,
  PolicyFile,
  TargetPolicy,
  CheckOptions,
  CheckReport,
  ForgetOptions,
  ForgetReport,
  PruneOptions,
  PruneReport,
  RepairOptions,
  RepairReport,
  Problem,
} from './store/store.js';
export type { CheckProgress } from './maintenance/check.js';
export type { PruneProgress } from './maintenance/prune.js';
export type { RepairProgress, DamagedPackReport, DamagedSnapshotReport } from './maintenance/repair.js';
export type { RetentionPolicy, KeepReason, SnapshotRef } from './maintenance/forget.js';
export type { WarningCode } from './maintenance/problems.js';
export type { CompressionName } from './compress/messages.js';
export { ChunkyardError, type ErrorCode } from './errors.js';
export { openFileReader, type ByteReader, type ByteSource } from './chunking/batcher.js';
export { createChunker, getHasher, resolveChunkerParams } from './chunking/index.js';
export type { Chunker, ChunkBatch, ChunkerParams, EngineName, Hasher } from './chunking/types.js';
export type { Backend, ObjectWriter, ObjectInfo, ByteRange, PutOptions } from './backend/types.js';
export { FsBackend } from './backend/fs.js';
export { MemoryBackend } from './backend/memory.js';
export { HttpBackend, openHttpBackend, type HttpBackendOptions } from './backend/http.js';
// S3Backend itself is in 'chunkyard/s3' (the AWS SDK loads only there or through openBackend);
// the conformance suite is in 'chunkyard/backend-conformance' (it needs node:test).
export { openBackend, describeLocation, locationKind, type OpenBackendOptions } from './backend/location.js';
export { RetryingBackend, DEFAULT_RETRY_POLICY, type RetryPolicy } from './backend/retry.js';
export { FaultyBackend, transientFault, type Fault, type FaultyBackendOptions } from './backend/faulty.js';
export { analyze, parseAvgSizes, DEFAULT_ANALYZE_MEMORY } from './analyze/analyze.js';
export type { AnalyzeOptions, AnalyzeProgress, AnalyzeReport, AnalyzeResult, GenerationResult } from './analyze/analyze.js';
export { renderAnalyzeHtml } from './analyze/html.js';
export { replicate, chunkerMismatch } from './replicate/index.js';
export type { ReplicateOptions, ReplicateProgress, ReplicateReport, ReplicateDestinationReport, ReplicaLocation } from './replicate/index.js';
export { pushStream, fetchSnapshot } from './daemon/client.js';
export type { PushOptions, PushedSnapshot, FetchOptions, FetchedSnapshot } from './daemon/client.js';
export { targetHooks, setTargetHooks, hooksFilePath, stateDir, parseHookTimeout } from './hooks/config.js';
export type { BackupHooks, HookSpec, OnHookError, HooksFile, TargetHooksEntry } from './hooks/config.js';
export { recoverPending } from './hooks/journal.js';
export type { HookResult, HookPhase } from './hooks/run.js';
