/**
 * The daemon's chunk-level endpoints (docs/daemon.md, "Chunk protocol"): a client that chunks
 * on its side (`chunkyard push`, `replicate` to an http(s):// destination) asks which chunks
 * the store lacks, uploads only those in stored form, and commits a snapshot as a list of
 * fingerprints. Authorised per target like the whole-stream upload (upload access: an
 * append-only token may push). Every uploaded chunk is decoded and checked against its
 * fingerprint before it is written; a commit is refused unless every chunk it names is
 * stored (and not condemned by a prune).
 *
 *   GET  /v1/chunker                       the store's chunker parameters and these limits
 *   POST /v1/targets/{target}/have         body: n × 32-byte fingerprints → n bytes, 1 = stored
 *   POST /v1/targets/{target}/chunks       body: chunk records (below) → {chunks, stored, present, bytes}
 *   POST /v1/targets/{target}/commit       body: the snapshot's fingerprints in order → 201 snapshot
 */
import { ChunkyardError } from '../errors.js';
import { fpKey } from '../fingerprints/fingerprint-index.js';
import { CODEC_NAMES, type CodecId } from '../pack/format.js';
import { RecipeWriter } from '../snapshot/recipe.js';
import { MANIFEST_VERSION, manifestName, recipeName, writeManifest, type SnapshotManifest } from '../snapshot/manifest.js';
import { snapshotInfo, snapshotLabels } from '../snapshot/info.js';
import { newSnapshotId } from '../util/ids.js';
import { StoredChunkWriter } from '../replicate/stored-writer.js';
import { HttpError, sendJson } from './http-util.js';
import type { RequestContext, Route } from './routes.js';
import type { Grant } from './auth.js';

/** Fingerprints per have request, and per index look-up batch of a commit. */
export const HAVE_BATCH = 4096;
/** Largest body of a chunk upload (records included). */
export const MAX_CHUNKS_BODY = 32 << 20;
/** Bytes of a chunk record's header: fingerprint, rawLength u32, storedLength u32, codec u8, 3 zero bytes. */
export const CHUNK_RECORD_HEADER = 44;
/** A stored chunk may exceed its raw length by at most this (codec framing of incompressible data). */
const STORED_SLACK = 1024;

type Access = { authenticate(ctx: RequestContext): Grant; authorize(grant: Grant, target: string, op: 'upload', named: boolean): void; target(ctx: RequestContext, raw: string): string };

/** The routes, given routes.ts's token checks (so both files authorise the same way). */
export function chunkRoutes(access: Access): Route[] {
  const writer = (ctx: RequestContext, rawTarget: string): string => {
    const grant = access.authenticate(ctx);
    const name = access.target(ctx, rawTarget);
    access.authorize(grant, name, 'upload', true);
    // Chunks arriving in stored form would bypass what these features do at ingest: an
    // encrypted store's chunks are sealed and keyed, and in a delta store a commit could name
    // a delta copy without its base entry. Clients fall back to the whole-stream upload.
    const unsupported = (ctx.store.config.features ?? []).filter((f) => f === 'encryption' || f === 'delta');
    if (unsupported.length > 0) {
      throw new HttpError(409, 'FEATURE_MISMATCH', `this daemon's store uses ${unsupported.join(', ')}: the chunk protocol is not available for it; upload whole streams (PUT /v1/targets/{target}/snapshots)`);
    }
    if (grant.quota !== undefined) {
      // Quota accounting is per whole-stream upload (docs/daemon.md, "Quotas"); a client
      // falls back to it on this answer.
      throw new HttpError(403, 'FORBIDDEN', 'this token has a quota: upload whole streams (PUT /v1/targets/{target}/snapshots); the chunk protocol is for tokens without one');
    }
    return name;
  };
  return [
    { name: '/v1/chunker', pattern: ['v1', 'chunker'], methods: { GET: (ctx) => chunker(ctx, access) } },
    { name: '/v1/targets/{target}/have', pattern: ['v1', 'targets', null, 'have'], methods: { POST: (ctx, [t]) => have(ctx, writer(ctx, t!)) } },
    { name: '/v1/targets/{target}/chunks', pattern: ['v1', 'targets', null, 'chunks'], methods: { POST: (ctx, [t]) => chunks(ctx, writer(ctx, t!)) } },
    { name: '/v1/targets/{target}/commit', pattern: ['v1', 'targets', null, 'commit'], methods: { POST: (ctx, [t]) => commit(ctx, writer(ctx, t!)) } },
  ];
}

async function chunker(ctx: RequestContext, access: Access): Promise<void> {
  access.authenticate(ctx);
  const c = ctx.store.config;
  sendJson(ctx.res, 200, {
    chunker: { ...c.chunker },
    features: c.features ?? [],
    compression: c.compression,
    ...(c.zstdLevel !== undefined ? { zstdLevel: c.zstdLevel } : {}),
    limits: { haveBatch: HAVE_BATCH, chunksBody: MAX_CHUNKS_BODY },
  });
}

/** The whole body, refused with 413 past `limit` bytes (the rest is drained by server.ts). */
async function bodyUpTo(ctx: RequestContext, limit: number): Promise<Buffer> {
  const declared = Number(ctx.req.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, 'BAD_ARGUMENT', `the body is ${declared} bytes; this endpoint takes at most ${limit}`);
  if (ctx.expectContinue) {
    ctx.res.writeContinue();
    ctx.continued = true;
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const b of ctx.req as AsyncIterable<Buffer>) {
    n += b.length;
    if (n > limit) throw new HttpError(413, 'BAD_ARGUMENT', `the body exceeds ${limit} bytes, the most this endpoint takes`);
    parts.push(b);
  }
  ctx.log.bytes += n;
  return Buffer.concat(parts);
}

function fingerprints(body: Buffer, what: string): Buffer[] {
  if (body.length % 32 !== 0) throw new HttpError(400, 'BAD_ARGUMENT', `${what}: the body is ${body.length} bytes, not a whole number of 32-byte fingerprints`);
  const out: Buffer[] = [];
  for (let o = 0; o < body.length; o += 32) out.push(body.subarray(o, o + 32));
  return out;
}

async function have(ctx: RequestContext, _target: string): Promise<void> {
  const fps = fingerprints(await bodyUpTo(ctx, HAVE_BATCH * 32), 'have');
  const end = ctx.daemon.beginDownload();
  try {
    const index = await ctx.store.fingerprintIndex();
    const found = await index.lookupMany(fps);
    const answer = Buffer.alloc(fps.length);
    found.forEach((l, i) => (answer[i] = l ? 1 : 0));
    ctx.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(answer.length) });
    ctx.res.end(answer);
  } finally {
    end();
  }
}

interface ChunkRecord {
  fingerprint: Buffer;
  rawLength: number;
  codec: CodecId;
  at: number;
  storedLength: number;
}

/** Parses chunk records; anything malformed is BAD_ARGUMENT naming the record. */
export function parseChunkRecords(body: Buffer, maxRaw: number): ChunkRecord[] {
  const out: ChunkRecord[] = [];
  let o = 0;
  while (o < body.length) {
    const n = out.length;
    if (body.length - o < CHUNK_RECORD_HEADER) throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: truncated header`);
    const rawLength = body.readUInt32LE(o + 32);
    const storedLength = body.readUInt32LE(o + 36);
    const codec = body[o + 40]!;
    if (body[o + 41] !== 0 || body[o + 42] !== 0 || body[o + 43] !== 0) throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: reserved bytes must be zero`);
    if (!(codec in CODEC_NAMES)) throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: unknown codec ${codec}`);
    if (rawLength === 0 || rawLength > maxRaw) throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: raw length ${rawLength} is outside 1..${maxRaw} (the store's largest chunk)`);
    if (storedLength === 0 || storedLength > rawLength + STORED_SLACK || (codec === 0 && storedLength !== rawLength)) {
      throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: stored length ${storedLength} does not fit raw length ${rawLength} and codec ${codec}`);
    }
    if (body.length - o - CHUNK_RECORD_HEADER < storedLength) throw new HttpError(400, 'BAD_ARGUMENT', `chunk record ${n}: truncated data`);
    out.push({ fingerprint: body.subarray(o, o + 32), rawLength, codec: codec as CodecId, at: o + CHUNK_RECORD_HEADER, storedLength });
    o += CHUNK_RECORD_HEADER + storedLength;
  }
  return out;
}

async function chunks(ctx: RequestContext, target: string): Promise<void> {
  const abort = new AbortController();
  const end = ctx.daemon.beginUpload(abort);
  try {
    const body = await bodyUpTo(ctx, MAX_CHUNKS_BODY);
    const records = parseChunkRecords(body, ctx.store.config.chunker.maxSize);
    const w = await ctx.store.openReplicaWriter(`chunk upload (target ${target})`);
    const out = new StoredChunkWriter(w);
    try {
      const known = await w.sink.index.lookupMany(records.map((r) => r.fingerprint));
      // Decode and check every chunk that is to be written, in the worker pool, before any is.
      const fresh = records.map((r, i) => ({ r, i })).filter(({ i }) => !known[i]);
      if (fresh.length > 0) {
        const pieces = new Uint32Array(fresh.length * 4);
        const fps = Buffer.alloc(fresh.length * 32);
        fresh.forEach(({ r }, j) => {
          pieces.set([r.at, r.storedLength, r.rawLength, r.codec], j * 4);
          r.fingerprint.copy(fps, j * 32);
        });
        const verified = await w.pool.verify(Buffer.from(body), pieces, fps, null);
        if (verified.failure) {
          const bad = fresh[verified.failure.index]!;
          throw new HttpError(422, 'CHUNK_CORRUPT', `chunk record ${bad.i} (${bad.r.fingerprint.toString('hex')}) does not decode to its fingerprint: ${verified.failure.reason}; nothing of this request was stored`);
        }
      }
      let stored = 0;
      let bytes = 0;
      const seen = new Set<string>();
      for (const [i, r] of records.entries()) {
        const k = fpKey(r.fingerprint);
        if (seen.has(k)) continue;
        seen.add(k);
        if (await out.add(Buffer.from(r.fingerprint), body.subarray(r.at, r.at + r.storedLength), r.rawLength, r.codec, known[i])) {
          stored++;
          bytes += r.storedLength;
        }
      }
      // Durable (pack, table object, index) before the answer: nothing acknowledged earlier.
      await out.finish();
      sendJson(ctx.res, 200, { chunks: records.length, stored, present: records.length - stored, bytes });
    } catch (err) {
      await out.abandon();
      throw err;
    } finally {
      await w.end();
    }
  } finally {
    end();
  }
}

async function commit(ctx: RequestContext, target: string): Promise<void> {
  const q = ctx.query;
  const id = q.get('id') ?? newSnapshotId();
  if (!/^[0-9a-f]{16}$/.test(id)) throw new HttpError(400, 'BAD_ARGUMENT', 'id: a snapshot id is 16 lowercase hex digits');
  const timeParam = q.get('time');
  if (timeParam !== null && !(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/.test(timeParam) && !Number.isNaN(Date.parse(timeParam)))) {
    throw new HttpError(400, 'BAD_ARGUMENT', 'time: an ISO-8601 UTC time like 2026-12-06T12:00:00.000Z');
  }
  const time = timeParam === null ? new Date().toISOString() : new Date(timeParam).toISOString();
  const metadata: Record<string, string> = {};
  for (const kv of q.getAll('meta')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new HttpError(400, 'BAD_ARGUMENT', `meta ${JSON.stringify(kv)}: give key=value`);
    metadata[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const labels = snapshotLabels({ host: q.get('host') ?? undefined, tags: q.getAll('tag').flatMap((t) => t.split(',')).filter((t) => t !== ''), metadata });
  if ((await ctx.store.backend.stat(manifestName(id))) !== undefined) throw new HttpError(409, 'OBJECT_EXISTS', `snapshot ${id} exists`);
  const abort = new AbortController();
  const end = ctx.daemon.beginUpload(abort);
  const started = Date.now();
  try {
    const w = await ctx.store.openReplicaWriter(`chunk commit (target ${target}, snapshot ${id})`);
    // "100 Continue" only once the session is live: a client that asks have/want after it
    // gets answers that a prune cannot invalidate before this commit ends.
    if (ctx.expectContinue) {
      ctx.res.writeContinue();
      ctx.continued = true;
    }
    let recipe: RecipeWriter | undefined;
    try {
      recipe = await RecipeWriter.create(w.backend, recipeName(id));
      let missing = 0;
      const firstMissing: string[] = [];
      let pending: Buffer = Buffer.alloc(0);
      let batch: Buffer[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        const found = await w.sink.index.lookupMany(batch);
        for (const [i, fp] of batch.entries()) {
          const loc = found[i];
          if (!loc) {
            missing++;
            if (firstMissing.length < 16) firstMissing.push(fp.toString('hex'));
          } else if (missing === 0) await recipe!.add(fp, loc);
        }
        batch = [];
      };
      for await (const b of ctx.req as AsyncIterable<Buffer>) {
        ctx.log.bytes += b.length;
        pending = pending.length ? Buffer.concat([pending, b]) : b;
        const whole = pending.length - (pending.length % 32);
        for (let o = 0; o < whole; o += 32) {
          batch.push(Buffer.from(pending.subarray(o, o + 32)));
          if (batch.length >= HAVE_BATCH) await flush();
        }
        pending = pending.subarray(whole);
      }
      if (pending.length !== 0) throw new HttpError(400, 'BAD_ARGUMENT', 'commit: the body is not a whole number of 32-byte fingerprints');
      await flush();
      if (missing > 0) {
        throw new HttpError(409, 'CHUNK_NOT_FOUND', `commit refused: ${missing} of the snapshot's chunks are not stored (first: ${firstMissing.join(', ')}); upload them and commit again`);
      }
      const summary = await recipe.commit();
      recipe = undefined;
      const manifest: SnapshotManifest = {
        version: MANIFEST_VERSION, id, target, time, ...labels, logicalBytes: summary.logicalBytes, chunks: summary.entries, policy: 'immediate',
        recipe: { name: summary.name, bytes: summary.bytes, blake3: summary.blake3 }, staging: null,
        ingest: { newChunks: 0, newBytes: 0, storedBytes: 0, seconds: (Date.now() - started) / 1000 },
      };
      try {
        await w.session.assertCurrent(`snapshot ${id}`);
        await writeManifest(w.backend, manifest);
      } catch (err) {
        await w.backend.delete(summary.name).catch(() => {});
        if (err instanceof ChunkyardError && err.code === 'OBJECT_EXISTS') throw new HttpError(409, 'OBJECT_EXISTS', `snapshot ${id} exists`);
        throw err;
      }
      ctx.catalog.invalidate();
      ctx.log.snapshot = id;
      sendJson(ctx.res, 201, snapshotInfo(manifest), { Location: `/v1/snapshots/${id}` });
    } finally {
      if (recipe) await recipe.abort().catch(() => {});
      await w.end();
    }
  } finally {
    end();
  }
}
