/**
 * Store locations → backends. A location is a filesystem path (FsBackend), an
 * `s3://BUCKET[/PREFIX]` URL (S3Backend, wrapped in RetryingBackend) or a daemon's object API,
 * `chunkyard+http(s)://HOST:PORT[/PATH]` (HttpBackend, wrapped in RetryingBackend); any other
 * URL scheme is refused with BAD_ARGUMENT. docs/backends.md describes them.
 */
import { badArgument } from '../errors.js';
import { openFsBackend } from './fs.js';
import { DEFAULT_RETRY_POLICY, RetryingBackend, withRetries, type RetryPolicy } from './retry.js';
import type { Backend } from './types.js';

export interface OpenBackendOptions {
  /** S3 endpoint URL; default CHUNKYARD_S3_ENDPOINT, else AWS. */
  s3Endpoint?: string;
  /**
   * Create what the location needs: a directory (and its parents) for a path. For S3 nothing
   * is created: the bucket must exist (a prefix needs no creating).
   */
  create?: boolean;
  /** S3 path-style addressing; default: on when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Token of a chunkyard+http(s):// location (scope "objects"); default CHUNKYARD_TOKEN. */
  token?: string;
}

/** A scheme such as "s3:", "http:", "file:" at the start of a location. */
const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

export type LocationKind = 'fs' | 's3' | 'http';

/** Which backend a location names; BAD_ARGUMENT for an unknown scheme or an empty location. */
export function locationKind(location: string): LocationKind {
  if (typeof location !== 'string' || location === '') throw badArgument('a store location is required');
  const scheme = URL_SCHEME.exec(location)?.[1]?.toLowerCase();
  if (scheme === undefined) return 'fs';
  if (scheme === 's3') return 's3';
  if (scheme === 'chunkyard+http' || scheme === 'chunkyard+https') return 'http';
  const hint = scheme === 'http' || scheme === 'https' ? ` (a daemon's objects as a store: chunkyard+${scheme}://HOST:PORT; plain ${scheme}:// URLs are for push and pull)` : '';
  throw badArgument(`unsupported store location ${JSON.stringify(location)}: a path, s3://BUCKET[/PREFIX] or chunkyard+https://HOST:PORT${hint}`);
}

/**
 * Opens the backend a location names. Errors: BAD_ARGUMENT (malformed location),
 * STORE_NOT_FOUND (missing directory without `create`, missing bucket), BACKEND_AUTH (S3
 * credentials refused), BACKEND_UNAVAILABLE (endpoint unreachable after the retries).
 */
export async function openBackend(location: string, options: OpenBackendOptions = {}): Promise<Backend> {
  const kind = locationKind(location);
  if (kind === 'fs') return openFsBackend(location, { create: options.create === true });
  if (kind === 'http') {
    const { openHttpBackend, parseHttpStoreLocation } = await import('./http.js');
    parseHttpStoreLocation(location); // BAD_ARGUMENT before any I/O
    const http = await withRetries(() => openHttpBackend(location, { token: options.token }), DEFAULT_RETRY_POLICY);
    return new RetryingBackend(http, DEFAULT_RETRY_POLICY);
  }
  // The AWS SDK takes ~0.3 s to load: only commands that open an s3:// location pay for it.
  const { openS3Backend, parseS3Location } = await import('./s3.js');
  parseS3Location(location); // BAD_ARGUMENT before any I/O
  const tuning = s3Tuning();
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...(tuning.attempts === undefined ? {} : { attempts: tuning.attempts }) };
  const s3 = await withRetries(
    () =>
      openS3Backend(location, {
        endpoint: options.s3Endpoint,
        forcePathStyle: options.forcePathStyle,
        partRetry: (attempt) => withRetries(attempt, policy),
        requestTimeoutMs: tuning.requestTimeoutMs,
        partsInFlight: tuning.partsInFlight,
        ...(tuning.partMiB === undefined ? {} : { partSize: tuning.partMiB * 1024 * 1024 }),
        ...(tuning.bufferMiB === undefined ? {} : { bufferBytes: tuning.bufferMiB * 1024 * 1024 }),
        signPayload: tuning.signPayload,
      }),
    policy,
  );
  return new RetryingBackend(s3, policy);
}

/** A location for messages: the S3 endpoint is added, since the URL does not name it. */
export function describeLocation(location: string, options: Pick<OpenBackendOptions, 's3Endpoint'> = {}): string {
  const kind = locationKind(location);
  if (kind === 'fs' || kind === 'http') return location;
  const endpoint = options.s3Endpoint ?? (process.env.CHUNKYARD_S3_ENDPOINT || 'AWS S3');
  return `${location} (at ${endpoint})`;
}

/**
 * Operators' knobs for s3:// locations, from the environment (docs/backends.md):
 * CHUNKYARD_S3_ATTEMPTS (attempts per request, the first included; default 6),
 * CHUNKYARD_S3_TIMEOUT_MS (per-request time limit; default 60000),
 * CHUNKYARD_S3_PARTS_IN_FLIGHT (multipart parts one writer uploads at once),
 * CHUNKYARD_S3_PART_MIB (multipart part size in MiB, 5 to 1024; default 32),
 * CHUNKYARD_S3_BUFFER_MIB (part buffers a process holds at most, in MiB, 0 to 65536; at
 * least two buffers; default 72),
 * CHUNKYARD_S3_SIGN_PAYLOAD (1: sign a SHA-256 of every request body, 0: never; default:
 * signed over plain http://, not over https://).
 * A malformed value is BAD_ARGUMENT.
 */
export function s3Tuning(env: NodeJS.ProcessEnv = process.env): { attempts?: number; requestTimeoutMs?: number; partsInFlight?: number; partMiB?: number; bufferMiB?: number; signPayload?: boolean } {
  const int = (name: string, min: number, max: number): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < min || n > max) throw badArgument(`${name}=${JSON.stringify(v)}: a whole number from ${min} to ${max}`);
    return n;
  };
  return {
    attempts: int('CHUNKYARD_S3_ATTEMPTS', 1, 100),
    requestTimeoutMs: int('CHUNKYARD_S3_TIMEOUT_MS', 100, 3_600_000),
    partsInFlight: int('CHUNKYARD_S3_PARTS_IN_FLIGHT', 1, 64),
    partMiB: int('CHUNKYARD_S3_PART_MIB', 5, 1024),
    bufferMiB: int('CHUNKYARD_S3_BUFFER_MIB', 0, 65536),
    signPayload: ((v) => (v === undefined ? undefined : v === 1))(int('CHUNKYARD_S3_SIGN_PAYLOAD', 0, 1)),
  };
}
