/**
 * Errors with stable codes. Every error chunkyard throws on purpose is a ChunkyardError whose
 * `code` is one of ErrorCode; docs/errors.md lists them. Codes are API: never rename one.
 */
export type ErrorCode =
  | 'BAD_ARGUMENT' // an option, parameter or name is invalid; nothing was changed
  | 'NATIVE_UNAVAILABLE' // the native addon could not be loaded (the wasm engine still works)
  | 'CHUNKER_BUSY' // a chunker was fed again before its previous push finished
  | 'STORE_NOT_FOUND' // no store at the given location
  | 'STORE_EXISTS' // init on a location that already holds a store
  | 'STORE_LOCKED' // another process holds the store's writer lock
  | 'STORE_CLOSED' // the store was used after close()
  | 'SESSION_EXPIRED' // a writer's session lapsed (suspended past its lease): it committed nothing
  | 'FORMAT_UNSUPPORTED' // a format or chunker version this build does not know
  | 'SNAPSHOT_NOT_FOUND' // no snapshot with that id, or no snapshot for that target
  | 'CHUNK_NOT_FOUND' // a chunk a snapshot needs is not in the store
  | 'CHUNK_CORRUPT' // a chunk failed its fingerprint or decompression check
  | 'PACK_CORRUPT' // a pack file is truncated or its header/trailer is damaged
  | 'OBJECT_NOT_FOUND' // a backend object does not exist
  | 'OBJECT_EXISTS' // an exclusive put found the object already there
  | 'CORRUPT' // a metadata file (config, snapshot, index entry) failed its check
  | 'ABORTED' // the operation was cancelled by its caller
  | 'IO_ERROR' // the operating system reported an I/O failure
  | 'UNAUTHORIZED' // a daemon refused the request: no token, or one it does not know (HTTP 401)
  | 'FORBIDDEN' // a daemon refused the request: the token may not read or write that target (HTTP 403)
  | 'BACKEND_AUTH' // the storage service refused the credentials or the permission (S3: 401/403)
  | 'BACKEND_UNAVAILABLE' // the storage service did not answer in time, could not be reached, or failed (5xx): transient
  | 'UNAVAILABLE' // a daemon cannot take the request now (shutting down, at its upload limit): retry later (HTTP 503)
  | 'CHUNKER_MISMATCH' // replication between stores whose chunkers differ (they share no chunks); nothing was written
  | 'FEATURE_MISMATCH' // replication into a store that lacks a feature (encryption, delta) the source's chunks need; nothing was written
  | 'DELTA_NEEDS_NATIVE' // a delta chunk (codec 3) must be decoded, and the native addon is not loaded (the JS fallback has no zstd dictionaries)
  | 'ARCHIVE_UNAVAILABLE' // the archive tier cannot be reached, or a restore needs it and it refused
  | 'ARCHIVE_MISMATCH' // the archive location belongs to another store, or is not an archive
  | 'QUOTA_EXCEEDED' // a daemon refused an upload: the token's quota of stored bytes is used up (HTTP 507)
  | 'PASSWORD_REQUIRED' // the store is encrypted and no password or key file was given
  | 'WRONG_PASSWORD' // the password (or key file) opens none of the store's key slots
  | 'KEY_SLOT_MISSING' // an encrypted store has no key slot left, or the slot named does not exist
  | 'KEY_SLOT_DAMAGED' // a key slot fails its checksum or holds invalid fields
  | 'KEY_SLOT_LAST' // refused: removing the last key slot would lock everyone out
  | 'KEY_MISMATCH' // two stores do not share key material (replication of sealed chunks refused)
  | 'HOOK_FAILED'; // a backup's pre or post hook failed or timed out under --on-hook-error fail: nothing was committed

export class ChunkyardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChunkyardError';
    this.code = code;
  }
}

export function badArgument(message: string): ChunkyardError {
  return new ChunkyardError('BAD_ARGUMENT', message);
}

/** True when `err` is a ChunkyardError with the given code. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof ChunkyardError && err.code === code;
}
