/**
 * S3Backend: the Backend contracts (types.ts) on an S3 bucket, through @aws-sdk/client-s3.
 * Proven against Ceph radosgw 16 (scripts/ceph.sh); docs/backends.md explains the choices.
 *
 * Object "a/b" is the key "<prefix>/a/b" in the bucket. Objects are immutable S3 objects,
 * so every put is atomic by construction: S3 shows either the old or the new object.
 *
 * Writes (slack = partSize / 16, see PART_SLACK_DIVISOR):
 *   object ≤ partSize + slack   one PutObject (with `If-None-Match: *` when exclusive: atomic
 *                               create-only, honoured by radosgw and AWS)
 *   larger objects              multipart upload: parts of partSize, the last one up to
 *                               partSize + slack (a pack is packSize plus its last chunk and
 *                               table: no tiny extra part for that tail), at most partsInFlight
 *                               uploading, then CompleteMultipartUpload. When exclusive:
 *                               HeadObject just before completion, and `If-None-Match: *` on
 *                               completion (AWS honours it; radosgw 16 ignores it, so there a
 *                               writer completing in the window between that HeadObject and
 *                               its completion may replace an object written meanwhile: the
 *                               last completion wins). The engine's exactly-one-winner objects
 *                               (manifests, sessions, markers) are small, and with the default
 *                               32 MiB parts a pack of the default packSize is one PutObject.
 *   An exclusive writer does not look for the name at open (the contract allows failing "by
 *   commit at the latest"): the engine's exclusive writers write fresh names (packs, recipes,
 *   staging), for which that HeadObject was one request per object that never found anything.
 *
 * Memory: a writer keeps its first SMALL_OBJECT_BYTES (1 MiB) in a buffer of its own; past
 * that it holds one part buffer (partSize + slack bytes) being filled plus at most
 * `partsInFlight` uploading. Across writers, a new part buffer is taken only while at most
 * `partsInFlight` upload, an upload starts only while at most `partsInFlight` upload (so at
 * most `partsInFlight` + 1 at once: startUpload), and at most `bufferBytes` of part buffers
 * (filling, uploading and spare; at least two) exist while anything uploads
 * (takePartBuffer): 72 MiB by default, 8 buffers of 8 MiB parts, 2 of 32 MiB parts. Spare
 * buffers are reused by the next writers (a pack's writer is still uploading when the next
 * pack's starts filling).
 *
 * Errors: NoSuchKey → OBJECT_NOT_FOUND, 412 → OBJECT_EXISTS, NoSuchBucket → STORE_NOT_FOUND,
 * 401/403 → BACKEND_AUTH, 5xx / throttling / timeouts / connection failures →
 * BACKEND_UNAVAILABLE (transient: RetryingBackend retries those), anything else IO_ERROR.
 * This backend itself does not retry (RetryingBackend wraps it), except the requests of an
 * open writer (its PutObject, or the parts and completion of a multipart upload), which a
 * wrapper cannot replay: those use `partRetry`.
 */
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { ChunkyardError, badArgument, hasCode } from '../errors.js';
import {
  assertByteRange,
  assertBytes,
  assertObjectName,
  assertObjectPrefix,
  isValidObjectName,
  isValidSegment,
} from './names.js';
import type { Backend, ByteRange, ObjectInfo, ObjectWriter, PutOptions } from './types.js';
import { BaseObjectWriter } from './writer.js';

/**
 * Default size of a multipart part; with its slack (2 MiB), the largest object written with one
 * PutObject. 32 MiB: a pack of the default packSize (32 MiB plus its last chunk and table) is
 * one create-only `If-None-Match: *` PutObject, not create + 4 parts + HeadObject + complete
 * (radosgw honours If-None-Match on a single PUT only), and radosgw + OSD spend ~0.5 CPU s
 * per GiB less on it (docs/benchmarks.md, "S3 ingest: a pack is one PutObject").
 */
export const DEFAULT_PART_SIZE = 32 * 1024 * 1024;
/** S3's smallest part (except the last). */
const MIN_PART_SIZE = 5 * 1024 * 1024;
/**
 * A part buffer holds partSize + partSize / PART_SLACK_DIVISOR bytes: the last part of an
 * object may be that much longer than partSize, and parts before it are partSize (the slack
 * bytes past partSize are carried over into the next part's buffer: at most 1/16 of the
 * bytes copied twice). Without it a pack of packSize (a multiple of partSize) plus its last
 * chunk and table took one more UploadPart request of a few KiB, which costs radosgw and the
 * SDK about as much as a part's bytes are worth (docs/benchmarks.md, "S3 ingest").
 */
export const PART_SLACK_DIVISOR = 16;
/**
 * openS3Backend aborts unfinished multipart uploads older than this (no writer takes a day
 * to upload one object; the same age as FsBackend's stale temporary files).
 */
export const STALE_UPLOAD_AGE_MS = 24 * 60 * 60 * 1000;
/** S3's longest key, in bytes: with a prefix, object names must be shorter than types.ts allows. */
export const MAX_KEY_LENGTH = 1024;
/** Default number of parts one writer uploads at once. */
export const DEFAULT_PARTS_IN_FLIGHT = 2;
/**
 * Default bound on the bytes of part buffers one backend holds (filling, uploading, spare),
 * all writers together: 8 buffers of 8 MiB parts, 2 of 32 MiB parts (see takePartBuffer).
 */
export const DEFAULT_BUFFER_BYTES = 72 * 1024 * 1024;
/**
 * A writer keeps its first bytes in a buffer of its own that grows up to this size, and takes
 * a part buffer only past it: small objects (recipes, staging) never hold a part buffer, a
 * spare one (all its pages resident) included.
 */
export const SMALL_OBJECT_BYTES = 1024 * 1024;
/** Default limit for one request (connect, send, first byte of the answer), in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Default limit for opening a connection, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export interface S3BackendOptions {
  /** Endpoint URL (e.g. http://127.0.0.1:7480). Default: CHUNKYARD_S3_ENDPOINT, else AWS. */
  endpoint?: string;
  /** Path-style addressing (http://host/bucket/key). Default: true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Region. Default: AWS_REGION / the shared config file, else us-east-1. */
  region?: string;
  /** Explicit credentials. Default: the AWS SDK's chain (AWS_* variables, ~/.aws files). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Multipart part size in bytes (≥ 5 MiB). The last part may be up to partSize / 16 longer;
   * objects up to partSize + partSize / 16 take one PutObject.
   */
  partSize?: number;
  /** Parts one writer uploads at once (≥ 1). */
  partsInFlight?: number;
  /**
   * Bytes of part buffers the backend holds at most, all writers together (at least two
   * buffers' worth is always allowed). Default DEFAULT_BUFFER_BYTES.
   */
  bufferBytes?: number;
  /** ListObjectsV2 page size (1–1000); small values are for tests. */
  listPageSize?: number;
  /** Per-request time limit in ms; a request over it fails with BACKEND_UNAVAILABLE. */
  requestTimeoutMs?: number;
  /** Connection time limit in ms. */
  connectTimeoutMs?: number;
  /** Most sockets open to the endpoint at once. Default 64. */
  maxSockets?: number;
  /**
   * Retries for the requests of an open writer (its PutObject; create, parts and completion
   * of a multipart upload), which a wrapper backend cannot replay. Default: none.
   * openBackend passes RetryingBackend's policy.
   */
  partRetry?: <T>(attempt: () => Promise<T>) => Promise<T>;
  /**
   * Sign the SHA-256 of every request body (SigV4's default: one pass of SHA-256 over every
   * byte uploaded, ~0.8 CPU s per GiB on the project's VM), so the server refuses a body
   * changed on the way. Default: signed over plain http://, `UNSIGNED-PAYLOAD` (headers and
   * URL still signed) over https://, where TLS already guarantees the body arrives as sent.
   * Over plain HTTP a body damaged in transit would otherwise be stored and acknowledged,
   * and only found by the BLAKE3 check of a later read: too late for a backup.
   * CHUNKYARD_S3_SIGN_PAYLOAD=1 / 0 forces it on / off.
   */
  signPayload?: boolean;
}

/** `s3://BUCKET[/PREFIX]` split into its parts; BAD_ARGUMENT when malformed. */
export function parseS3Location(location: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(location);
  if (m === null) throw badArgument(`not an s3:// location: ${JSON.stringify(location)}`);
  const bucket = m[1]!;
  // S3 bucket naming rules (radosgw accepts the same).
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw badArgument(`invalid bucket name ${JSON.stringify(bucket)} in ${location}`);
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '' && !prefix.split('/').every(isValidSegment)) {
    throw badArgument(
      `invalid prefix ${JSON.stringify(prefix)} in ${location}: '/'-separated segments of [A-Za-z0-9._-]`,
    );
  }
  return { bucket, prefix };
}

export class S3Backend implements Backend {
  readonly location: string;
  readonly bucket: string;
  /** Key prefix with its trailing '/', or '' for the bucket's root. */
  readonly #keyPrefix: string;
  readonly #client: S3Client;
  readonly #partSize: number;
  /** partSize + slack: the size of a part buffer, and the largest object sent as one PutObject. */
  readonly #partCapacity: number;
  readonly #partsInFlight: number;
  readonly #listPageSize: number;
  readonly #partRetry: <T>(attempt: () => Promise<T>) => Promise<T>;
  readonly #writers = new Set<BaseObjectWriter>();
  /** Part buffers no writer uses. */
  readonly #spareParts: Buffer[] = [];
  /** Part buffers that exist (filling, uploading or spare), and the most that may. */
  #allocated = 0;
  readonly #maxBuffers: number;
  /** Part buffers the SDK is uploading, all writers together (see takePartBuffer). */
  #uploading = 0;
  readonly #uploadWaiters: (() => void)[] = [];
  /** The stale-upload clean-up started by openS3Backend, until close() has waited for it. */
  #cleanup: Promise<void> | undefined;
  #closed = false;

  /** No I/O happens here; openS3Backend also checks the bucket. */
  constructor(location: string, options: S3BackendOptions = {}) {
    const { bucket, prefix } = parseS3Location(location);
    this.bucket = bucket;
    this.#keyPrefix = prefix === '' ? '' : `${prefix}/`;
    this.location = `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`;
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.#partCapacity = this.#partSize + Math.floor(this.#partSize / PART_SLACK_DIVISOR);
    this.#partsInFlight = options.partsInFlight ?? DEFAULT_PARTS_IN_FLIGHT;
    this.#listPageSize = options.listPageSize ?? 1000;
    const bufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes < 0) throw badArgument('bufferBytes must be a whole number ≥ 0');
    this.#maxBuffers = Math.max(2, Math.floor(bufferBytes / this.#partCapacity));
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < MIN_PART_SIZE) {
      throw badArgument(`partSize must be an integer ≥ ${MIN_PART_SIZE}`);
    }
    if (!Number.isSafeInteger(this.#partsInFlight) || this.#partsInFlight < 1) {
      throw badArgument('partsInFlight must be an integer ≥ 1');
    }
    if (!Number.isSafeInteger(this.#listPageSize) || this.#listPageSize < 1 || this.#listPageSize > 1000) {
      throw badArgument('listPageSize must be an integer from 1 to 1000');
    }
    this.#partRetry = options.partRetry ?? ((attempt) => attempt());
    const endpoint = options.endpoint ?? (process.env.CHUNKYARD_S3_ENDPOINT || undefined);
    if (endpoint !== undefined) {
      let url: URL;
      try {
        url = new URL(endpoint);
      } catch {
        throw badArgument(`invalid S3 endpoint URL ${JSON.stringify(endpoint)}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw badArgument(`S3 endpoint must be http:// or https://, got ${JSON.stringify(endpoint)}`);
      }
    }
    const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
    this.#client = new S3Client({
      endpoint,
      forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
      region: options.region ?? regionFromChain(),
      credentials: options.credentials,
      // Retries are RetryingBackend's job, with the classification below.
      maxAttempts: 1,
      // Ceph 16 refuses the SDK's streaming checksum framing (HTTP 411): checksums only
      // where an operation requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // No `Expect: 100-continue` on large bodies: the SDK sends the body at once anyway (it
      // does not wait for the interim answer with an agent of its caller's), so the header only
      // made the server write and the client parse one more response per part.
      expectContinueHeader: false,
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        requestTimeout,
        throwOnRequestTimeout: true,
        // A stalled response body (no byte for this long) fails too.
        socketTimeout: requestTimeout,
        httpAgent: new Agent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
      },
    });
    // AWS itself (no endpoint) is https.
    const overTls = endpoint === undefined || new URL(endpoint).protocol === 'https:';
    if (!(options.signPayload ?? !overTls)) {
      // Before signing (finalizeRequest): a request that names its payload hash is signed
      // with that value instead of a SHA-256 of the body (@smithy/signature-v4).
      this.#client.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { headers?: Record<string, string>; body?: unknown };
          if (request.headers !== undefined && request.body !== undefined && typeof request.body !== 'string') {
            request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          }
          return next(args);
        },
        { step: 'build', name: 'chunkyardUnsignedPayload' },
      );
    }
  }

  /** Checks that the bucket exists and the credentials may use it. */
  async checkBucket(): Promise<void> {
    this.#checkOpen();
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = httpStatus(err);
      if (status === 404) {
        throw new ChunkyardError('STORE_NOT_FOUND', `no bucket ${this.bucket} at ${this.#endpointLabel()}`, {
          cause: err,
        });
      }
      throw this.#mapError(err, `checking bucket ${this.bucket}`);
    }
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    this.#key(name);
    assertBytes(data, 'put data');
    await this.putObject(name, data, options?.exclusive === true);
  }

  /** One PutObject (names and data already checked). */
  async putObject(name: string, data: Uint8Array, exclusive: boolean): Promise<void> {
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.#key(name),
          // The SDK sends the bytes as they are when the request starts and the contract says
          // callers keep them unchanged until put resolves: no copy needed.
          Body: data,
          ContentLength: data.byteLength,
          ...(exclusive ? { IfNoneMatch: '*' } : {}),
        }),
      );
    } catch (err) {
      throw this.#mapError(err, `put ${name}`, name);
    }
  }

  async openWriter(name: string, options?: PutOptions): Promise<ObjectWriter> {
    this.#checkOpen();
    assertObjectName(name);
    this.#key(name);
    const exclusive = options?.exclusive === true;
    // No HeadObject here for exclusive writers: commit checks (see the header comment).
    const writer = new S3Writer(this, name, exclusive, (w) => this.#writers.delete(w));
    this.#writers.add(writer);
    return writer;
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    this.#checkOpen();
    assertObjectName(name);
    this.#key(name);
    assertByteRange(range);
    const got = await this.#getBody(name, range);
    if (got === undefined) return Buffer.alloc(0);
    // Copy each piece into one buffer of the announced size as it arrives (no list of pieces
    // kept alive, no second pass); without a length, collect and concatenate.
    const out = got.length !== undefined ? Buffer.allocUnsafe(got.length) : undefined;
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      for await (const chunk of got.body) {
        const piece = chunk as Buffer;
        if (out === undefined) chunks.push(piece);
        else if (length + piece.length <= out.length) out.set(piece, length);
        length += piece.length;
      }
    } catch (err) {
      throw this.#mapError(err, `get ${name}`, name);
    }
    this.#checkLength(name, length, got.length);
    return out ?? Buffer.concat(chunks);
  }

  /**
   * The bytes of `range` (clamped like get) into `into`, which holds at least
   * range.end − range.start bytes; resolves to the view of `into` filled. For reads into
   * reused buffers (a restore's read slots): no buffer allocated per request.
   */
  async getInto(name: string, range: ByteRange, into: Uint8Array): Promise<Uint8Array> {
    this.#checkOpen();
    assertObjectName(name);
    this.#key(name);
    assertByteRange(range);
    if (into.byteLength < range.end - range.start) throw badArgument(`getInto: ${into.byteLength} bytes given for a range of ${range.end - range.start}`);
    const got = await this.#getBody(name, range);
    if (got === undefined) return into.subarray(0, 0);
    let length = 0;
    try {
      for await (const chunk of got.body) {
        const piece = chunk as Buffer;
        if (length + piece.length <= into.byteLength) into.set(piece, length);
        length += piece.length;
      }
    } catch (err) {
      throw this.#mapError(err, `get ${name}`, name);
    }
    this.#checkLength(name, length, got.length);
    if (length > into.byteLength) {
      throw new ChunkyardError('IO_ERROR', `${this.location}: get ${name}: the answer has ${length} bytes, more than the ${range.end - range.start} asked for`);
    }
    return into.subarray(0, length);
  }

  getStream(name: string, range?: ByteRange): Readable {
    assertObjectName(name);
    this.#key(name);
    assertByteRange(range);
    const self = this;
    async function* pieces(): AsyncGenerator<Buffer> {
      self.#checkOpen();
      const got = await self.#getBody(name, range);
      if (got === undefined) return;
      let length = 0;
      try {
        for await (const chunk of got.body) {
          length += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      } catch (err) {
        throw self.#mapError(err, `get ${name}`, name);
      }
      self.#checkLength(name, length, got.length);
    }
    return Readable.from(pieces(), { objectMode: false });
  }

  /** A body that ended early (a connection closed mid-answer) is a transient failure, never data. */
  #checkLength(name: string, received: number, expected: number | undefined): void {
    if (expected !== undefined && received !== expected) {
      throw new ChunkyardError(
        'BACKEND_UNAVAILABLE',
        `${this.location}: get ${name}: the answer ended after ${received} of ${expected} bytes`,
      );
    }
  }

  /**
   * The object's bytes in `range` as a stream with its announced length, or undefined when
   * the range is empty.
   */
  async #getBody(
    name: string,
    range: ByteRange | undefined,
  ): Promise<{ body: Readable; length: number | undefined } | undefined> {
    if (range !== undefined && range.start >= range.end) {
      // S3 has no empty range: an existing object gives an empty result.
      if ((await this.stat(name)) === undefined) throw notFound(name);
      return undefined;
    }
    try {
      const out = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.#key(name),
          ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}),
        }),
      );
      return { body: out.Body as Readable, length: out.ContentLength };
    } catch (err) {
      // 416: the range starts at or past the end of an existing object (or it is empty).
      if (httpStatus(err) === 416) return undefined;
      throw this.#mapError(err, `get ${name}`, name);
    }
  }

  async stat(name: string): Promise<number | undefined> {
    this.#checkOpen();
    assertObjectName(name);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#key(name) }));
      return out.ContentLength ?? 0;
    } catch (err) {
      // HEAD answers have no body: a 404 is a missing key (a missing bucket shows at open
      // and in every other call).
      if (httpStatus(err) === 404) return undefined;
      throw this.#mapError(err, `stat ${name}`, name);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#checkOpen();
    assertObjectPrefix(prefix);
    let token: string | undefined;
    do {
      this.#checkOpen();
      let page;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.#keyPrefix + prefix,
            MaxKeys: this.#listPageSize,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.#mapError(err, `list ${JSON.stringify(prefix)}`);
      }
      for (const entry of page.Contents ?? []) {
        const name = entry.Key?.slice(this.#keyPrefix.length);
        // Keys that are not object names were not written by a Backend: not ours to show.
        if (name === undefined || !isValidObjectName(name)) continue;
        yield {
          name,
          size: entry.Size ?? 0,
          ...(entry.LastModified !== undefined ? { modified: entry.LastModified.getTime() } : {}),
        };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(name: string): Promise<void> {
    this.#checkOpen();
    assertObjectName(name);
    try {
      // S3 answers 204 for a missing key too.
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#key(name) }));
    } catch (err) {
      throw this.#mapError(err, `delete ${name}`, name);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // The clean-up openS3Backend started ends first (it never fails; see startStaleUploadRemoval).
    const cleanup = this.#cleanup;
    this.#cleanup = undefined;
    if (cleanup !== undefined) await cleanup;
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
    this.#allocated -= this.#spareParts.length;
    this.#spareParts.length = 0;
    this.#client.destroy();
  }

  /**
   * Aborts unfinished multipart uploads under the prefix that started more than `maxAgeMs`
   * ago (by the service's clock vs ours): what crashed writers or an outage during an abort
   * left. Like FsBackend's stale temporary files; a bucket lifecycle rule
   * (AbortIncompleteMultipartUpload) does the same on the service side. Resolves to the
   * number aborted.
   */
  /**
   * removeStaleUploads, best effort, beside whatever the caller does next (failures, e.g.
   * without the permission to list uploads, are ignored); close() waits for it. It only
   * touches uploads a day old, never one a writer of this process started.
   */
  startStaleUploadRemoval(): void {
    this.#cleanup ??= this.removeStaleUploads().then(
      () => {},
      () => {},
    );
  }

  async removeStaleUploads(maxAgeMs: number = STALE_UPLOAD_AGE_MS): Promise<number> {
    this.#checkOpen();
    const cutoff = Date.now() - maxAgeMs;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    let aborted = 0;
    for (;;) {
      let page;
      try {
        page = await this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.#keyPrefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (err) {
        throw this.#mapError(err, 'list unfinished uploads');
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Initiated === undefined || upload.Initiated.getTime() > cutoff) continue;
        const name = upload.Key.slice(this.#keyPrefix.length);
        if (!isValidObjectName(name)) continue;
        await this.abortUpload(name, upload.UploadId);
        aborted++;
      }
      if (page.IsTruncated !== true) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  // --- for S3Writer ---

  get partSize(): number {
    return this.#partSize;
  }

  /** Bytes a part buffer holds: partSize plus the slack the last part may have. */
  get partCapacity(): number {
    return this.#partCapacity;
  }

  get partsInFlight(): number {
    return this.#partsInFlight;
  }

  /** Part buffers that exist now (filling, uploading or spare), and the most while anything uploads. */
  get partBuffers(): { held: number; max: number } {
    return { held: this.#allocated, max: this.#maxBuffers };
  }

  /**
   * A part buffer, reused when one is spare: writers of large objects would otherwise map and
   * fault in fresh memory for every part (measurably slower on this VM) and leave it to GC.
   */
  async takePartBuffer(): Promise<Buffer> {
    // Backpressure across writers: while more than partsInFlight buffers are uploading (parts,
    // or whole objects at commit), a writer waits for one of them before it fills another.
    // Without it a caller that commits writers without waiting (the backup seals a pack
    // beside filling its next one) could have any number of full buffers waiting for the
    // service. And at most maxBuffers part buffers exist: past that a writer waits for an
    // upload to give one back (with 32 MiB parts, 2: a pack uploads as one PutObject while
    // the next fills). A writer never waits while nothing uploads (nothing would wake it:
    // the buffers are held by writers being filled), so a buffer is then allocated beyond.
    for (;;) {
      if (this.#uploading === 0 || this.#uploading <= this.#partsInFlight) {
        const spare = this.#spareParts.pop();
        if (spare !== undefined) return spare;
        if (this.#allocated < this.#maxBuffers || this.#uploading === 0) {
          this.#allocated++;
          return Buffer.allocUnsafeSlow(this.#partCapacity);
        }
      }
      await new Promise<void>((wake) => this.#uploadWaiters.push(wake));
    }
  }

  /**
   * A part buffer is about to be handed to the SDK: waits while more than partsInFlight
   * buffers upload, then counts it until uploadEnded. So at most partsInFlight + 1 upload at
   * any moment, however many writers hold full buffers: a buffer taken while few uploaded
   * (takePartBuffer) may be ready to go only after others started, and the part whose slack
   * was just moved to a new buffer starts beside that buffer's own upload later. Waiting here
   * only waits for uploads already started, which end on their own.
   */
  async startUpload(): Promise<void> {
    while (this.#uploading > this.#partsInFlight) await new Promise<void>((wake) => this.#uploadWaiters.push(wake));
    this.#uploading++;
  }

  /** The SDK is done with a buffer startUpload counted: it becomes spare, the waiters go on. */
  uploadEnded(buffer: Buffer): void {
    this.#uploading--;
    this.returnPartBuffer(buffer);
  }

  /**
   * Gives a buffer back (a part buffer becomes spare while at most maxBuffers exist; another
   * buffer, a small writer's own, is left to GC) and wakes the writers waiting for one: all of
   * them, each checks again (one woken per buffer could leave one waiting with nothing
   * uploading, never to be woken).
   */
  returnPartBuffer(buffer: Buffer): void {
    if (buffer.length === this.#partCapacity) {
      if (!this.#closed && this.#allocated <= this.#maxBuffers) this.#spareParts.push(buffer);
      else this.#allocated--;
    }
    const waiters = this.#uploadWaiters.splice(0);
    for (const wake of waiters) wake();
  }

  /**
   * A writer's object of one buffer as one PutObject, retried like the parts of a multipart
   * upload (`partRetry`: a wrapper cannot replay a writer). An exclusive put whose answer was
   * lost may have been stored: when a retry then gets OBJECT_EXISTS, the object is ours if its
   * ETag (for a single PUT, the MD5 of the body) is the MD5 of our bytes (computed only then).
   */
  async putWhole(name: string, data: Uint8Array, exclusive: boolean): Promise<void> {
    let mayHaveLanded = false;
    try {
      await this.#partRetry(async () => {
        this.#checkOpen();
        try {
          await this.putObject(name, data, exclusive);
        } catch (err) {
          if (hasCode(err, 'BACKEND_UNAVAILABLE')) mayHaveLanded = true;
          throw err;
        }
      });
    } catch (err) {
      if (exclusive && mayHaveLanded && hasCode(err, 'OBJECT_EXISTS')) {
        const etag = await this.#etag(name).catch(() => undefined);
        if (etag !== undefined && etag === createHash('md5').update(data).digest('hex')) return;
      }
      throw err;
    }
  }

  async createUpload(name: string): Promise<string> {
    return this.#partRetry(async () => {
      this.#checkOpen();
      try {
        const out = await this.#client.send(
          new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.#key(name) }),
        );
        if (out.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
        return out.UploadId;
      } catch (err) {
        throw this.#mapError(err, `start multipart upload of ${name}`, name);
      }
    });
  }

  async uploadPart(name: string, uploadId: string, partNumber: number, data: Buffer): Promise<CompletedPart> {
    // Uploading a part number again replaces it: safe to retry.
    return this.#partRetry(async () => {
      this.#checkOpen();
      try {
        const out = await this.#client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: this.#key(name),
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: data,
            ContentLength: data.byteLength,
          }),
        );
        return { PartNumber: partNumber, ETag: out.ETag };
      } catch (err) {
        throw this.#mapError(err, `upload part ${partNumber} of ${name}`, name);
      }
    });
  }

  /**
   * Completes a multipart upload, retried like the parts. A completion whose answer was lost
   * (a reset, a timeout) may have taken effect: a retry then finds no such upload (or, with
   * If-None-Match, the object). The object is ours when its ETag is the multipart ETag of our
   * parts (MD5 of the parts' MD5s, "-" part count), which the service computes the same way.
   */
  async completeUpload(name: string, uploadId: string, parts: CompletedPart[], exclusive: boolean): Promise<void> {
    const ours = multipartEtag(parts);
    let attempts = 0;
    await this.#partRetry(async () => {
      this.#checkOpen();
      const retry = attempts++ > 0;
      try {
        await this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: this.#key(name),
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
            // Honoured by AWS S3; radosgw 16 ignores it (see the header comment).
            ...(exclusive ? { IfNoneMatch: '*' } : {}),
          }),
        );
      } catch (err) {
        const status = httpStatus(err);
        if (retry && ours !== undefined && (status === 404 || status === 412)) {
          const etag = await this.#etag(name).catch(() => undefined);
          if (etag === ours) return; // an earlier attempt completed it
        }
        throw this.#mapError(err, `complete multipart upload of ${name}`, name);
      }
    });
  }

  /** The object's ETag without quotes, or undefined when it does not exist. */
  async #etag(name: string): Promise<string | undefined> {
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#key(name) }));
      return out.ETag?.replace(/"/g, '');
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw this.#mapError(err, `stat ${name}`, name);
    }
  }

  /** Best effort: an upload left behind is invisible to list() and is billed until removed. */
  async abortUpload(name: string, uploadId: string): Promise<void> {
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.#key(name), UploadId: uploadId }),
      );
    } catch {
      // Ignored: the object was never visible; a bucket lifecycle rule
      // (AbortIncompleteMultipartUpload) reclaims what a crash or an outage leaves behind.
    }
  }

  // --- helpers ---

  /** The key of a (valid) object name; BAD_ARGUMENT when the prefix makes it too long. */
  #key(name: string): string {
    const key = this.#keyPrefix + name;
    if (Buffer.byteLength(key) > MAX_KEY_LENGTH) {
      throw badArgument(
        `object name too long for ${this.location}: with the prefix the key has ${Buffer.byteLength(key)} bytes, S3 allows ${MAX_KEY_LENGTH}`,
      );
    }
    return key;
  }

  #checkOpen(): void {
    if (this.#closed) throw new ChunkyardError('STORE_CLOSED', `backend ${this.location} is closed`);
  }

  #endpointLabel(): string {
    return process.env.CHUNKYARD_S3_ENDPOINT || 'the S3 endpoint';
  }

  #mapError(err: unknown, what: string, name?: string): unknown {
    if (err instanceof ChunkyardError) return err;
    if (this.#closed) {
      return new ChunkyardError('STORE_CLOSED', `backend ${this.location} was closed during ${what}`, {
        cause: err,
      });
    }
    return mapS3Error(err, `${this.location}: ${what}`, name);
  }
}

class S3Writer extends BaseObjectWriter {
  readonly #backend: S3Backend;
  readonly #exclusive: boolean;
  /** The part being filled (from the backend's spare buffers), once something is written. */
  #buffer: Buffer | undefined;
  #filled = 0;
  #uploadId: string | undefined;
  #parts: CompletedPart[] = [];
  #inFlight = new Set<Promise<void>>();
  /** The first failed part upload, thrown by the next write or commit. */
  #partError: unknown;

  constructor(backend: S3Backend, name: string, exclusive: boolean, onDone: (w: BaseObjectWriter) => void) {
    super(name, onDone);
    this.#backend = backend;
    this.#exclusive = exclusive;
  }

  protected async writeData(data: Uint8Array): Promise<void> {
    const capacity = this.#backend.partCapacity;
    let at = 0;
    if (this.#uploadId === undefined && (this.#buffer === undefined || this.#buffer.length < capacity)) {
      const need = this.#filled + data.byteLength;
      if (need <= SMALL_OBJECT_BYTES) {
        // Small so far: a buffer of the writer's own, grown by doubling (see SMALL_OBJECT_BYTES).
        if (this.#buffer === undefined || this.#buffer.length < need) {
          const grown = Buffer.allocUnsafe(Math.min(SMALL_OBJECT_BYTES, Math.max(need, 2 * (this.#buffer?.length ?? 0), 64 * 1024)));
          if (this.#buffer !== undefined) this.#buffer.copy(grown, 0, 0, this.#filled);
          this.#buffer = grown;
        }
        this.#buffer.set(data, this.#filled);
        this.#filled += data.byteLength;
        return;
      }
      if (this.#buffer !== undefined) {
        // Past the small size: on into a part buffer.
        const small = this.#buffer;
        this.#buffer = undefined;
        const part = await this.#backend.takePartBuffer();
        small.copy(part, 0, 0, this.#filled);
        this.#buffer = part;
      }
    }
    while (at < data.byteLength) {
      if (this.#partError !== undefined) throw this.#partError;
      // A full buffer is sent only once more bytes come: the last part may be this one (up to
      // partSize + slack bytes), and an object that fits one buffer takes a single PutObject.
      if (this.#filled === capacity) await this.#sendPart(false);
      // Take a part buffer on first use (an empty writer costs nothing).
      this.#buffer ??= await this.#backend.takePartBuffer();
      const n = Math.min(capacity - this.#filled, data.byteLength - at);
      this.#buffer.set(data.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
    }
  }

  /**
   * Starts uploading the next part: the whole buffer when it is the last part, else its first
   * partSize bytes, the rest (the slack) carried over to the start of a new buffer. Waits
   * while too many parts are in flight.
   */
  async #sendPart(last: boolean): Promise<void> {
    if (this.#uploadId === undefined) this.#uploadId = await this.#backend.createUpload(this.name);
    const uploadId = this.#uploadId;
    const partNumber = this.#parts.length + 1;
    const whole = this.#buffer!;
    const length = last ? this.#filled : Math.min(this.#filled, this.#backend.partSize);
    const body = whole.subarray(0, length);
    const carry = this.#filled - length;
    const slot: CompletedPart = { PartNumber: partNumber };
    this.#parts.push(slot);
    this.#buffer = undefined;
    this.#filled = 0;
    if (carry > 0) {
      // Before the upload starts (then `whole` cannot be spare and reused by another writer
      // yet): the slack goes to the start of the next buffer. Waiting for a buffer here only
      // waits for other uploads, which end on their own.
      const next = await this.#backend.takePartBuffer();
      next.set(whole.subarray(length, length + carry), 0);
      this.#buffer = next;
      this.#filled = carry;
    }
    await this.#backend.startUpload();
    const upload = this.#backend.uploadPart(this.name, uploadId, partNumber, body).then(
      (done) => {
        slot.ETag = done.ETag;
      },
      (err) => {
        this.#partError ??= err;
      },
    );
    const tracked = upload.finally(() => {
      this.#inFlight.delete(tracked);
      this.#backend.uploadEnded(whole);
    });
    this.#inFlight.add(tracked);
    while (this.#inFlight.size >= this.#backend.partsInFlight) await Promise.race(this.#inFlight);
    if (this.#partError !== undefined) throw this.#partError;
  }

  protected async commitData(): Promise<void> {
    if (this.#uploadId === undefined) {
      // Small object: one PutObject, atomic (and create-only when exclusive).
      const whole = this.#buffer;
      this.#buffer = undefined;
      if (whole !== undefined) await this.#backend.startUpload();
      try {
        await this.#backend.putWhole(this.name, whole?.subarray(0, this.#filled) ?? Buffer.alloc(0), this.#exclusive);
      } finally {
        if (whole !== undefined) this.#backend.uploadEnded(whole);
      }
      return;
    }
    if (this.#filled > 0) await this.#sendPart(true);
    await Promise.all(this.#inFlight);
    if (this.#partError !== undefined) throw this.#partError;
    // The best radosgw allows for create-only multipart (see the header comment).
    if (this.#exclusive && (await this.#backend.stat(this.name)) !== undefined) throw exists(this.name);
    await this.#backend.completeUpload(this.name, this.#uploadId, this.#parts, this.#exclusive);
    this.#uploadId = undefined;
  }

  protected async discardData(): Promise<void> {
    if (this.#buffer !== undefined) this.#backend.returnPartBuffer(this.#buffer);
    this.#buffer = undefined;
    await Promise.all(this.#inFlight);
    if (this.#uploadId !== undefined) {
      const id = this.#uploadId;
      this.#uploadId = undefined;
      await this.#backend.abortUpload(this.name, id);
    }
  }
}

// --- error mapping (shared with tests and RetryingBackend through the codes) ---

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function httpStatus(err: unknown): number | undefined {
  return (err as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);
/** 409 ConditionalRequestConflict: AWS's answer to a conditional write racing another; try again. */
const THROTTLING = new Set([
  'ConditionalRequestConflict','SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests']);
const AUTH = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'CredentialsProviderError',
]);

/** Maps an AWS SDK (or network) error to a ChunkyardError with a stable code. */
export function mapS3Error(err: unknown, what: string, name?: string): ChunkyardError {
  if (err instanceof ChunkyardError) return err;
  const e = (err ?? {}) as SdkErrorShape & { message?: string };
  const status = httpStatus(err);
  const errName = e.name ?? e.Code ?? '';
  const errCode = e.code ?? '';
  const message = `${what}: ${errName || errCode || 'error'}${status !== undefined ? ` (HTTP ${status})` : ''}${
    e.message ? `: ${e.message}` : ''
  }`;
  if (errName === 'NoSuchKey' || (status === 404 && name !== undefined && errName !== 'NoSuchBucket')) {
    return new ChunkyardError('OBJECT_NOT_FOUND', `no object ${JSON.stringify(name ?? '')}: ${message}`, {
      cause: err,
    });
  }
  if (errName === 'NoSuchBucket') return new ChunkyardError('STORE_NOT_FOUND', message, { cause: err });
  if (status === 412 || errName === 'PreconditionFailed') {
    return new ChunkyardError('OBJECT_EXISTS', `object ${JSON.stringify(name ?? '')} exists: ${message}`, {
      cause: err,
    });
  }
  if (AUTH.has(errName) || status === 401 || status === 403) {
    return new ChunkyardError('BACKEND_AUTH', message, { cause: err });
  }
  if (
    (status !== undefined && status >= 500) ||
    status === 429 ||
    THROTTLING.has(errName) ||
    errName === 'TimeoutError' ||
    errName === 'RequestTimeout' ||
    errName === 'AbortError' ||
    NETWORK_CODES.has(errCode) ||
    NETWORK_CODES.has(errName)
  ) {
    return new ChunkyardError('BACKEND_UNAVAILABLE', message, { cause: err });
  }
  return new ChunkyardError('IO_ERROR', message, { cause: err });
}

/**
 * The region the SDK's chain finds (AWS_REGION, the shared config file), else us-east-1:
 * radosgw and most S3-compatible services accept any region, and AWS redirects the SDK.
 */
function regionFromChain(): () => Promise<string> {
  let found: Promise<string> | undefined;
  return () =>
    (found ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return 'us-east-1';
      } finally {
        probe.destroy();
      }
    })());
}

/** S3's ETag of a multipart object: MD5 of the parts' binary MD5s, "-", the part count. */
export function multipartEtag(parts: CompletedPart[]): string | undefined {
  const md5 = createHash('md5');
  for (const part of parts) {
    const hex = part.ETag?.replace(/"/g, '');
    if (hex === undefined || !/^[0-9a-f]{32}$/i.test(hex)) return undefined;
    md5.update(Buffer.from(hex, 'hex'));
  }
  return `${md5.digest('hex')}-${parts.length}`;
}

function notFound(name: string): ChunkyardError {
  return new ChunkyardError('OBJECT_NOT_FOUND', `no object ${JSON.stringify(name)}`);
}

function exists(name: string): ChunkyardError {
  return new ChunkyardError('OBJECT_EXISTS', `object ${JSON.stringify(name)} already exists`);
}

/**
 * Opens `s3://BUCKET[/PREFIX]`: checks that the bucket exists and can be used, then starts
 * aborting stale unfinished uploads, best effort, in the background (startStaleUploadRemoval:
 * the listing is no longer one more round trip before every command's first read).
 */
export async function openS3Backend(location: string, options?: S3BackendOptions): Promise<S3Backend> {
  const backend = new S3Backend(location, options);
  try {
    await backend.checkBucket();
  } catch (err) {
    await backend.close();
    throw err;
  }
  backend.startStaleUploadRemoval();
  return backend;
}
