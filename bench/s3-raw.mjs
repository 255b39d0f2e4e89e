#!/usr/bin/env node
// Raw radosgw put/get rate of 8 MiB objects with @aws-sdk/client-s3, 8 requests in flight:
// the ceiling chunkyard's S3 ingest and restore are compared against (issue 15: ≥ 80%).
//
//   eval "$(bash scripts/ceph.sh env)"          # after scripts/ceph.sh start
//   npm run build:ts && node bench/s3-raw.mjs [--objects 64] [--size-mib 8] [--in-flight 8] [--rounds 3]
//
// Each round measures, interleaved, the raw SDK (PutObject/GetObject) and the same transfers
// through chunkyard's backend (openBackend: S3Backend in RetryingBackend): `put`, a streamed
// `openWriter` (1 MiB writes; an object of exactly the 8 MiB part size is one PutObject),
// `get` (into one Buffer the caller owns) and `getStream`.
// Prints one JSON line per round and a median summary. Bodies are random bytes generated
// before timing; the bucket is created and removed by the bench.
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const objects = Number(args.objects ?? 64);
const size = Number(args['size-mib'] ?? 8) * 1024 * 1024;
const inFlight = Number(args['in-flight'] ?? 8);
const rounds = Number(args.rounds ?? 3);
const endpoint = process.env.CHUNKYARD_S3_ENDPOINT;
if (!endpoint) {
  console.error('set CHUNKYARD_S3_ENDPOINT (eval "$(bash scripts/ceph.sh env)")');
  process.exit(2);
}

const client = new S3Client({
  endpoint,
  forcePathStyle: true,
  region: process.env.AWS_REGION ?? 'us-east-1',
  maxAttempts: 1,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: inFlight * 2 }) },
});
const bucket = `chunkyard-bench-${randomBytes(4).toString('hex')}`;
await client.send(new CreateBucketCommand({ Bucket: bucket }));

// A pool of distinct bodies (8 are enough: every object gets its own key; content does not
// matter to radosgw, which neither compresses nor dedupes here).
const bodies = Array.from({ length: Math.min(objects, 16) }, () => randomBytes(size));

async function pool(count, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, count) }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
}

const mib = (bytes, ms) => bytes / 1024 / 1024 / (ms / 1000);
const { openBackend } = await import('../dist/src/backend/location.js');
const backend = await openBackend(`s3://${bucket}`, { s3Endpoint: endpoint });

const results = [];
try {
  for (let round = 1; round <= rounds; round++) {
    const via = {};
    {
      const name = (i) => `b${round}/o${i}`;
      let t0 = performance.now();
      await pool(objects, (i) => backend.put(name(i), bodies[i % bodies.length]));
      via.putMiBs = +mib(objects * size, performance.now() - t0).toFixed(1);
      t0 = performance.now();
      await pool(objects, async (i) => {
        const w = await backend.openWriter(`w${round}/o${i}`);
        const body = bodies[i % bodies.length];
        for (let at = 0; at < size; at += 1 << 20) await w.write(body.subarray(at, at + (1 << 20)));
        await w.commit();
      });
      via.writerMiBs = +mib(objects * size, performance.now() - t0).toFixed(1);
      t0 = performance.now();
      let got = 0;
      await pool(objects, async (i) => {
        const n = (await backend.get(name(i))).length; // (not `got += await …`: that reads `got` before the await)
        got += n;
      });
      via.getMiBs = +mib(got, performance.now() - t0).toFixed(1);
      if (got !== objects * size) throw new Error(`backend read ${got} bytes, expected ${objects * size}`);
      t0 = performance.now();
      let streamed = 0;
      await pool(objects, async (i) => {
        for await (const chunk of backend.getStream(name(i))) streamed += chunk.length;
      });
      via.getStreamMiBs = +mib(streamed, performance.now() - t0).toFixed(1);
      if (streamed !== objects * size) throw new Error(`backend streamed ${streamed} bytes, expected ${objects * size}`);
      await pool(objects, (i) => Promise.all([backend.delete(name(i)), backend.delete(`w${round}/o${i}`)]));
    }
    const key = (i) => `r${round}/o${i}`;
    let t0 = performance.now();
    await pool(objects, (i) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: key(i), Body: bodies[i % bodies.length], ContentLength: size })),
    );
    const putMs = performance.now() - t0;
    t0 = performance.now();
    let got = 0;
    await pool(objects, async (i) => {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(i) }));
      for await (const chunk of out.Body) got += chunk.length;
    });
    const getMs = performance.now() - t0;
    if (got !== objects * size) throw new Error(`read ${got} bytes, expected ${objects * size}`);
    const r = {
      round,
      objects,
      objectMiB: size / 1048576,
      inFlight,
      raw: { putMiBs: +mib(objects * size, putMs).toFixed(1), getMiBs: +mib(got, getMs).toFixed(1) },
      backend: via,
    };
    results.push(r);
    console.log(JSON.stringify(r));
    await pool(objects, (i) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(i) })));
  }
} finally {
  await backend.close();
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
  client.destroy();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const med = (pick) => median(results.map(pick));
console.log(
  JSON.stringify({
    summary: 'median',
    raw: { putMiBs: med((r) => r.raw.putMiBs), getMiBs: med((r) => r.raw.getMiBs) },
    backend: {
      putMiBs: med((r) => r.backend.putMiBs),
      writerMiBs: med((r) => r.backend.writerMiBs),
      getMiBs: med((r) => r.backend.getMiBs),
      getStreamMiBs: med((r) => r.backend.getStreamMiBs),
    },
  }),
);
