/**
 * S3Backend against a real Ceph radosgw (test/support/ceph.ts finds or starts it): the shared
 * conformance suite, then what only S3 has (pagination, multipart, credentials, buckets,
 * unreachable endpoints, timeouts) and the retry wrapper over the real service.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Agent as HttpAgent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { after, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { runBackendConformance, pattern } from '../../src/backend/conformance.js';
import { FaultyBackend, transientFault } from '../../src/backend/faulty.js';
import { FsBackend } from '../../src/backend/fs.js';
import { openBackend } from '../../src/backend/location.js';
import { RetryingBackend, withRetries } from '../../src/backend/retry.js';
import { S3Backend, mapS3Error, multipartEtag, openS3Backend, type S3BackendOptions } from '../../src/backend/s3.js';
import type { Backend } from '../../src/backend/types.js';
import { ChunkyardError, type ErrorCode } from '../../src/errors.js';
import { emptyPrefix, pendingUploads, rawKeys, s3TestCluster } from '../support/ceph.js';

/**
 * A TCP proxy in front of radosgw that passes requests through and, for each request whose
 * head `drop` picks, breaks the connection instead of passing the answer back (the service
 * has acted on it: the answer is lost). While `refusing()`, it breaks every connection.
 */
function answerDroppingProxy(target: URL, drop: (head: string) => boolean, refusing: () => boolean = () => false): { server: Server; dropped: () => number } {
  let dropped = 0;
  const server = createServer((client) => {
    if (refusing()) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    let dropAnswer = false;
    client.on('data', (d: Buffer) => {
      if (refusing()) {
        client.destroy();
        upstream.destroy();
        return;
      }
      if (drop(d.toString('latin1', 0, 400))) dropAnswer = true;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (dropAnswer) {
        dropAnswer = false;
        dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  return { server, dropped: () => dropped };
}

const cluster = await s3TestCluster();

if ('skip' in cluster) {
  test('S3Backend on radosgw', { skip: cluster.skip }, () => {});
} else {
  const bucket = await cluster.newBucket();
  after(() => cluster.release());
  let counter = 0;
  const freshPrefix = (): string => `t${++counter}-${randomBytes(4).toString('hex')}`;
  const s3 = (prefix: string, options: S3BackendOptions = {}): S3Backend =>
    new S3Backend(`s3://${bucket}/${prefix}`, { endpoint: cluster.endpoint, ...options });

  // A fresh bucket per test, objects at its root: the suite's longest names (1024 bytes) are
  // S3's longest keys. A small part size, so that writers of a few MiB go multipart too.
  runBackendConformance('S3Backend (radosgw)', async () => {
    const own = await cluster.newBucket();
    return {
      backend: new S3Backend(`s3://${own}`, { endpoint: cluster.endpoint, partSize: 5 * 1024 * 1024 }),
      cleanup: () => cluster.dropBucket(own),
    };
  });

  // What the engine gets from openBackend: the same contracts through RetryingBackend.
  runBackendConformance('openBackend(s3://…) (RetryingBackend over S3Backend, radosgw)', async () => {
    const own = await cluster.newBucket();
    return {
      backend: await openBackend(`s3://${own}`, { s3Endpoint: cluster.endpoint }),
      cleanup: () => cluster.dropBucket(own),
    };
  });

  test('S3Backend: a prefix shortens the longest name (S3 keys are at most 1024 bytes)', async () => {
    const prefix = freshPrefix();
    const b = s3(prefix);
    try {
      const fits = ['a'.repeat(255), 'b'.repeat(255), 'c'.repeat(255), 'd'.repeat(1024 - 3 * 256 - prefix.length - 1)].join('/');
      await b.put(fits, Buffer.from('x'));
      assert.deepEqual(await b.get(fits), Buffer.from('x'));
      await assertRejects(b.put(`${fits}e`, Buffer.from('x')), 'BAD_ARGUMENT');
      await assertRejects(b.openWriter(`${fits}e`), 'BAD_ARGUMENT');
      assert.deepEqual(await rawKeys(cluster.client, bucket, `${prefix}/`), [`${prefix}/${fits}`]);
    } finally {
      await b.close();
      await emptyPrefix(cluster.client, bucket, prefix);
    }
  });

  describe('S3Backend on radosgw', () => {
    test('lists more than 1000 objects through pages, each once, under its prefix only', async () => {
      const prefix = freshPrefix();
      const b = s3(prefix, { listPageSize: 97 });
      const neighbour = s3(`${prefix}x`);
      try {
        const names = Array.from({ length: 1103 }, (_, i) => `p/${String(i).padStart(5, '0')}`);
        for (let i = 0; i < names.length; i += 64) {
          await Promise.all(names.slice(i, i + 64).map((n) => b.put(n, Buffer.from(n))));
        }
        await neighbour.put('p/00000', Buffer.from('not in the listing')); // key "<prefix>x/p/00000"
        const seen = new Map<string, number>();
        const before = Date.now();
        for await (const info of b.list('')) {
          assert.ok(!seen.has(info.name), `${info.name} listed twice`);
          seen.set(info.name, info.size);
          assert.ok(info.modified !== undefined && info.modified <= before + 5000 && info.modified > before - 600_000);
        }
        assert.deepEqual([...seen.keys()].sort(), names);
        for (const n of names) assert.equal(seen.get(n), n.length);
        let some = 0;
        for await (const info of b.list('p/010')) some += info.name.startsWith('p/010') ? 1 : 1000;
        assert.equal(some, 100);
      } finally {
        await b.close();
        await neighbour.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('multipart: round trip, nothing pending after commit; abort leaves nothing', async () => {
      const prefix = freshPrefix();
      const b = s3(prefix, { partSize: 5 * 1024 * 1024, partsInFlight: 2 });
      try {
        const data = pattern(17 * 1024 * 1024 + 333, 5);
        const w = await b.openWriter('big');
        for (let at = 0; at < data.length; at += 1_000_003) await w.write(data.subarray(at, at + 1_000_003));
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`).then((u) => u.length), 1);
        await w.commit();
        assert.ok((await b.get('big')).equals(data));
        assert.ok((await b.get('big', { start: 5 * 1024 * 1024 - 10, end: 5 * 1024 * 1024 + 10 })).equals(
          data.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10),
        ));
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);

        const gone = await b.openWriter('gone');
        await gone.write(pattern(12 * 1024 * 1024, 6)); // two parts sent, one buffered
        assert.equal((await pendingUploads(cluster.client, bucket, `${prefix}/`)).length, 1);
        await gone.abort();
        assert.equal(await b.stat('gone'), undefined);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
        assert.deepEqual(await rawKeys(cluster.client, bucket, `${prefix}/`), [`${prefix}/big`]);
      } finally {
        await b.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('part sizes: the last part takes a tail up to partSize / 16 (no tiny extra part), earlier parts are partSize', async () => {
      const prefix = freshPrefix();
      const MiB = 1024 * 1024;
      const b = s3(prefix, { partSize: 5 * MiB, partsInFlight: 2 });
      // The part count is in a multipart object's ETag ("<md5>-<parts>"); one PutObject has none.
      const partsOf = async (name: string): Promise<number> => {
        const head = await cluster.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${name}` }));
        const m = /-(\d+)"?$/.exec(head.ETag ?? '');
        return m === null ? 1 : Number(m[1]);
      };
      try {
        const cases: [string, number, number][] = [
          ['one-put', 5 * MiB + 320 * 1024, 1], // partSize + slack: still one PutObject
          ['two-parts', 5 * MiB + 320 * 1024 + 1, 2], // one byte more: 5 MiB, then the rest
          ['tail-in-last', 10 * MiB + 100_000, 2], // a pack's tail: no third part of 100 kB
          ['tail-over-slack', 10 * MiB + 400 * 1024, 3],
        ];
        for (const [name, size, parts] of cases) {
          const data = pattern(size, size % 251);
          const w = await b.openWriter(name, { exclusive: true });
          // Odd write sizes, so that part boundaries fall inside writes.
          for (let at = 0; at < size; at += 777_777) await w.write(data.subarray(at, at + 777_777));
          await w.commit();
          assert.ok((await b.get(name)).equals(data), name);
          assert.equal(await partsOf(name), parts, name);
          const mid = 5 * MiB;
          assert.ok((await b.get(name, { start: mid - 7, end: mid + 7 })).equals(data.subarray(mid - 7, mid + 7)), `${name} across the first boundary`);
        }
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        await b.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('part buffers: at most partsInFlight + 1 uploading across writers committed without waiting or all together; every object lands whole', async () => {
      // An HTTP proxy that counts the PUTs with a body of a part's size in flight at once.
      const target = new URL(cluster.endpoint);
      const agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
      let now = 0;
      let most = 0;
      let big = 0;
      const proxy = createHttpServer((req, res) => {
        const large = req.method === 'PUT' && Number(req.headers['content-length'] ?? 0) >= 1024 * 1024;
        if (large) {
          big++;
          most = Math.max(most, ++now);
        }
        const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
          r.on('end', () => {
            if (large) now--;
          });
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const prefix = freshPrefix();
      const MiB = 1024 * 1024;
      const b = new S3Backend(`s3://${bucket}/${prefix}`, {
        endpoint: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        partSize: 5 * MiB,
        partsInFlight: 2,
      });
      try {
        // Five one-buffer objects and one of three parts, all committed without waiting, as a
        // backup seals packs beside its next one.
        const sizes = [5 * MiB, 5 * MiB + 1000, 4 * MiB, 5 * MiB + 300 * 1024, 2 * MiB, 13 * MiB + 5];
        const datas = sizes.map((n, i) => pattern(n, 40 + i));
        const commits: Promise<void>[] = [];
        for (const [i, data] of datas.entries()) {
          const w = await b.openWriter(`o/${i}`, { exclusive: true });
          await w.write(data);
          commits.push(w.commit());
        }
        await Promise.all(commits);
        for (const [i, data] of datas.entries()) assert.ok((await b.get(`o/${i}`)).equals(data), `o/${i}`);
        assert.equal(big, 5 + 3);
        // A writer takes a buffer while at most partsInFlight upload; its commit makes one more.
        assert.ok(most <= 3, `${most} part buffers uploading at once`);
        // Writers that all filled their buffer before any upload began (each took it while
        // nothing uploaded), then committed at once: their uploads still start at most
        // partsInFlight + 1 at a time. Before startUpload waited, all five went at once.
        most = 0;
        const held = [];
        for (let i = 0; i < 5; i++) {
          const w = await b.openWriter(`held/${i}`, { exclusive: true });
          await w.write(datas[2]!);
          held.push(w);
        }
        await Promise.all(held.map((w) => w.commit()));
        for (let i = 0; i < 5; i++) assert.ok((await b.get(`held/${i}`)).equals(datas[2]!), `held/${i}`);
        assert.ok(most <= 3, `${most} uploads at once from writers committed together`);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        await b.close();
        agent.destroy();
        await new Promise((r) => proxy.close(r));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('removeStaleUploads aborts unfinished uploads under the prefix only, by age', async () => {
      const prefix = freshPrefix();
      const b = s3(prefix);
      const other = s3(`${prefix}-other`);
      try {
        const left = await cluster.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}/packs/crashed` }));
        await cluster.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}-other/keep` }));
        assert.ok(left.UploadId);
        assert.equal(await b.removeStaleUploads(), 0, 'a fresh upload is not stale');
        assert.equal((await pendingUploads(cluster.client, bucket, `${prefix}/`)).length, 1);
        // Wait past the service's clock resolution (LastModified/Initiated are whole seconds).
        await new Promise((r) => setTimeout(r, 1100));
        assert.equal(await b.removeStaleUploads(0), 1);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
        assert.equal((await pendingUploads(cluster.client, bucket, `${prefix}-other/`)).length, 1);
      } finally {
        await b.close();
        await other.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('a multipart completion whose answer was lost is retried and the commit succeeds', async () => {
      // A proxy in front of radosgw that lets every first CompleteMultipartUpload through
      // and then drops its answer (the connection breaks after the service completed it).
      // radosgw answers a repeated completion with 200; services that answer NoSuchUpload
      // (or 412 with If-None-Match) are recognised by the object's multipart ETag.
      let completions = 0;
      const { server: proxy, dropped } = answerDroppingProxy(new URL(cluster.endpoint), (head) => /^POST \S*uploadId=/.test(head) && completions++ % 2 === 0);
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const prefix = freshPrefix();
      const b = new S3Backend(`s3://${bucket}/${prefix}`, {
        endpoint: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        partSize: 5 * 1024 * 1024,
        partRetry: (attempt) => withRetries(attempt, { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 }),
      });
      try {
        for (const exclusive of [false, true]) {
          const data = pattern(11 * 1024 * 1024, exclusive ? 1 : 2);
          const w = await b.openWriter(`lost-${exclusive}`, { exclusive });
          await w.write(data);
          await w.commit();
          assert.ok((await b.get(`lost-${exclusive}`)).equals(data), `exclusive: ${exclusive}`);
        }
        assert.equal(dropped(), 2, 'both first completions lost their answer');
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        await b.close();
        await new Promise((r) => proxy.close(r));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test("a writer's PutObject whose answer was lost is retried: ours → committed, exclusive or not; an outage past the retries fails the commit", async () => {
      // A proxy in front of radosgw that passes every other large PUT (a writer's whole object)
      // through and then drops its answer (the connection breaks after radosgw stored it).
      let puts = 0;
      let refuseAll = false;
      const { server: proxy, dropped } = answerDroppingProxy(
        new URL(cluster.endpoint),
        (head) => /^PUT \S*\/whole-(true|false)/.test(head) && puts++ % 2 === 0,
        () => refuseAll,
      );
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const prefix = freshPrefix();
      const b = new S3Backend(`s3://${bucket}/${prefix}`, {
        endpoint: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        partSize: 5 * 1024 * 1024,
        partRetry: (attempt) => withRetries(attempt, { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 }),
      });
      try {
        for (const exclusive of [false, true]) {
          const data = pattern(5 * 1024 * 1024 + 4321, exclusive ? 3 : 4);
          const w = await b.openWriter(`whole-${exclusive}`, { exclusive });
          await w.write(data);
          await w.commit();
          assert.ok((await b.get(`whole-${exclusive}`)).equals(data), `exclusive: ${exclusive}`);
        }
        assert.equal(dropped(), 2, 'both first PUTs lost their answer');
        // Someone else's object under the name: the exclusive writer still gets OBJECT_EXISTS.
        await b.put('whole-taken', Buffer.from('first'), { exclusive: true });
        const w = await b.openWriter('whole-taken', { exclusive: true });
        await w.write(pattern(3 * 1024 * 1024, 5));
        await assertRejects(w.commit(), 'OBJECT_EXISTS');
        assert.deepEqual(await b.get('whole-taken'), Buffer.from('first'));
        // No answer at all, past the retries: the commit fails, nothing is stored.
        refuseAll = true;
        const lost = await b.openWriter('whole-never', { exclusive: true });
        await lost.write(pattern(2 * 1024 * 1024, 6));
        await assertRejects(lost.commit(), 'BACKEND_UNAVAILABLE');
        refuseAll = false;
        const direct = s3(prefix);
        assert.equal(await direct.stat('whole-never'), undefined);
        await direct.close();
      } finally {
        await b.close();
        await new Promise((r) => proxy.close(r));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('over plain http:// request bodies are signed by default, UNSIGNED-PAYLOAD only when asked (signPayload false); radosgw stores both', async () => {
      // A proxy that records the payload hash header of every PUT (PutObject, UploadPart).
      const target = new URL(cluster.endpoint);
      const hashes: string[] = [];
      const proxy: Server = createServer((client) => {
        const upstream = connect(Number(target.port), target.hostname);
        client.on('data', (d: Buffer) => {
          const head = d.toString('latin1', 0, Math.min(d.length, 4096));
          if (head.startsWith('PUT ')) hashes.push(/\r\nx-amz-content-sha256: *([^\r]*)/i.exec(head)?.[1] ?? '(none)');
          upstream.write(d);
        });
        upstream.on('data', (d: Buffer) => client.write(d));
        for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
          a.on('error', () => b.destroy());
          a.on('close', () => b.destroy());
        }
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const endpoint = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
      const prefix = freshPrefix();
      try {
        for (const signPayload of [undefined, false, true]) {
          hashes.length = 0;
          const signed = signPayload ?? true;
          const b = new S3Backend(`s3://${bucket}/${prefix}`, { endpoint, partSize: 5 * 1024 * 1024, signPayload });
          try {
            const small = pattern(1000, signPayload === undefined ? 7 : signPayload ? 3 : 4);
            await b.put(`small-${signPayload}`, small, { exclusive: true });
            const big = pattern(11 * 1024 * 1024, signPayload === undefined ? 8 : signPayload ? 5 : 6);
            const w = await b.openWriter(`big-${signPayload}`);
            await w.write(big);
            await w.commit();
            assert.ok((await b.get(`small-${signPayload}`)).equals(small));
            assert.ok((await b.get(`big-${signPayload}`)).equals(big));
            assert.equal(hashes.length, 4, 'one PutObject and three parts');
            for (const h of hashes) {
              if (signed) assert.match(h, /^[0-9a-f]{64}$/, `a SHA-256 of the body (signPayload ${signPayload})`);
              else assert.equal(h, 'UNSIGNED-PAYLOAD');
            }
          } finally {
            await b.close();
          }
        }
        // A signed payload hash is checked by radosgw: a body that does not match it is refused.
        const b = new S3Backend(`s3://${bucket}/${prefix}`, { endpoint: cluster.endpoint, signPayload: true });
        try {
          await b.put('checked', Buffer.from('abc'));
          assert.ok((await b.get('checked')).equals(Buffer.from('abc')));
        } finally {
          await b.close();
        }
      } finally {
        await new Promise((r) => proxy.close(r));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('multipartEtag computes the ETag radosgw gives a multipart object', async () => {
      const prefix = freshPrefix();
      const key = `${prefix}/etag`;
      try {
        const { UploadId } = await cluster.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
        const parts = [];
        for (const [i, size] of [5 * 1024 * 1024, 5 * 1024 * 1024, 12345].entries()) {
          const out = await cluster.client.send(
            new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: pattern(size, i) }),
          );
          parts.push({ PartNumber: i + 1, ETag: out.ETag });
        }
        await cluster.client.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
        );
        const head = await cluster.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        assert.equal(head.ETag?.replace(/"/g, ''), multipartEtag(parts));
        assert.match(multipartEtag(parts)!, /^[0-9a-f]{32}-3$/);
      } finally {
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('part buffers: at most bufferBytes of them exist while anything uploads, across writers committed without waiting', async () => {
      const prefix = freshPrefix();
      const MiB = 1024 * 1024;
      // bufferBytes 0: the floor of two buffers (one filling while one uploads).
      const b = s3(prefix, { partSize: 5 * MiB, partsInFlight: 2, bufferBytes: 0 });
      assert.deepEqual(b.partBuffers, { held: 0, max: 2 });
      let most = 0;
      const sampler = setInterval(() => (most = Math.max(most, b.partBuffers.held)), 1);
      try {
        // Six one-buffer objects committed without waiting (a backup sealing packs beside its
        // next one), then one of five parts written in odd pieces.
        const datas = [5, 4, 5, 3, 5, 5].map((m, i) => pattern(m * MiB + 1000 * i, 60 + i));
        const commits: Promise<void>[] = [];
        for (const [i, data] of datas.entries()) {
          const w = await b.openWriter(`o/${i}`, { exclusive: true });
          await w.write(data);
          most = Math.max(most, b.partBuffers.held);
          commits.push(w.commit());
        }
        const large = pattern(23 * MiB + 17, 99);
        const w = await b.openWriter('large', { exclusive: true });
        for (let at = 0; at < large.length; at += 999_999) {
          await w.write(large.subarray(at, at + 999_999));
          most = Math.max(most, b.partBuffers.held);
        }
        await w.commit();
        await Promise.all(commits);
        for (const [i, data] of datas.entries()) assert.ok((await b.get(`o/${i}`)).equals(data), `o/${i}`);
        assert.ok((await b.get('large')).equals(large));
        assert.ok(most <= 2 && most >= 1, `${most} part buffers at once`);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        clearInterval(sampler);
        await b.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('small objects take no part buffer; one that grows past 1 MiB moves into one and lands whole', async () => {
      const prefix = freshPrefix();
      const MiB = 1024 * 1024;
      const b = s3(prefix, { partSize: 5 * MiB });
      try {
        const small = pattern(700_000, 3);
        const w1 = await b.openWriter('small', { exclusive: true });
        for (let at = 0; at < small.length; at += 65_537) await w1.write(small.subarray(at, at + 65_537));
        assert.equal(b.partBuffers.held, 0);
        await w1.commit();
        assert.equal(b.partBuffers.held, 0);
        assert.ok((await b.get('small')).equals(small));
        // 300 kB writes: the fourth crosses 1 MiB; then on past one part (multipart).
        for (const size of [MiB, MiB + 1, 3 * MiB, 7 * MiB + 5]) {
          const data = pattern(size, size % 97);
          const w = await b.openWriter(`grown/${size}`, { exclusive: true });
          for (let at = 0; at < size; at += 300_000) await w.write(data.subarray(at, at + 300_000));
          // Past 1 MiB a part buffer is held (a multipart writer may hold a second one).
          assert.ok(size > MiB ? b.partBuffers.held >= 1 : b.partBuffers.held === 0, `${size}: ${b.partBuffers.held}`);
          await w.commit();
          assert.ok((await b.get(`grown/${size}`)).equals(data), `${size}`);
        }
        // An aborted small writer leaves nothing.
        const w2 = await b.openWriter('dropped', { exclusive: true });
        await w2.write(pattern(2 * MiB, 5));
        await w2.abort();
        assert.equal(await b.stat('dropped'), undefined);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        await b.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('whole packs as one PutObject (32 MiB parts): a pack-sized streamed object is one create-only PUT; racing writers of one name: exactly one winner', async () => {
      const prefix = freshPrefix();
      const MiB = 1024 * 1024;
      const clients = Array.from({ length: 3 }, () => s3(prefix, { partSize: 32 * MiB }));
      try {
        // A pack: 32 MiB of chunks, its last chunk and its table (within the 2 MiB slack).
        const datas = clients.map((_, i) => pattern(32 * MiB + 200_000 + i, 70 + i));
        const writers = await Promise.all(clients.map((c) => c.openWriter('packs/ab/pack', { exclusive: true })));
        for (const [i, w] of writers.entries()) {
          for (let at = 0; at < datas[i]!.length; at += 4 * MiB + 3) await w.write(datas[i]!.subarray(at, at + 4 * MiB + 3));
        }
        const results = await Promise.allSettled(writers.map((w) => w.commit()));
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(winners.length, 1, `winners ${winners.join(', ')}`);
        for (const r of results) if (r.status === 'rejected') assertCode(r.reason, 'OBJECT_EXISTS');
        assert.ok((await clients[0]!.get('packs/ab/pack')).equals(datas[winners[0]!]!));
        // One PutObject: a multipart object's ETag ends in "-<parts>".
        const head = await cluster.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/packs/ab/pack` }));
        assert.match(head.ETag ?? '', /^"?[0-9a-f]{32}"?$/);
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
        for (const c of clients) assert.ok(c.partBuffers.held <= c.partBuffers.max);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('an exclusive multipart writer refuses to complete over an object written meanwhile', async () => {
      const prefix = freshPrefix();
      const b = s3(prefix, { partSize: 5 * 1024 * 1024 });
      try {
        const w = await b.openWriter('claimed', { exclusive: true });
        await w.write(pattern(11 * 1024 * 1024, 1));
        await b.put('claimed', Buffer.from('first'), { exclusive: true });
        await assertRejects(w.commit(), 'OBJECT_EXISTS');
        assert.deepEqual(await b.get('claimed'), Buffer.from('first'));
        assert.deepEqual(await pendingUploads(cluster.client, bucket, `${prefix}/`), []);
      } finally {
        await b.close();
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('concurrent exclusive puts from separate clients: exactly one winner', async () => {
      const prefix = freshPrefix();
      const clients = Array.from({ length: 4 }, () => s3(prefix));
      try {
        for (let round = 0; round < 5; round++) {
          const name = `race/${round}`;
          const attempts = clients.flatMap((c, i) =>
            [0, 1, 2].map((j) => ({ c, data: pattern(100 + i * 10 + j, round * 100 + i * 10 + j) })),
          );
          const results = await Promise.allSettled(attempts.map((a) => a.c.put(name, a.data, { exclusive: true })));
          const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
          assert.equal(winners.length, 1, `round ${round}: winners ${winners.join(', ')}`);
          for (const r of results) if (r.status === 'rejected') assertCode(r.reason, 'OBJECT_EXISTS');
          assert.ok((await clients[0]!.get(name)).equals(attempts[winners[0]!]!.data));
        }
      } finally {
        await Promise.all(clients.map((c) => c.close()));
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('wrong credentials: BACKEND_AUTH and nothing written', async () => {
      const prefix = freshPrefix();
      const wrong = { accessKeyId: 'chunkyardtestaccesskey', secretAccessKey: 'not-the-secret' };
      await assertRejects(openS3Backend(`s3://${bucket}/${prefix}`, { endpoint: cluster.endpoint, credentials: wrong }), 'BACKEND_AUTH');
      const unknown = { accessKeyId: 'nosuchkey', secretAccessKey: 'whatever' };
      const b = s3(prefix, { credentials: unknown });
      try {
        await assertRejects(b.put('x', Buffer.from('x')), 'BACKEND_AUTH');
        await assertRejects(b.put('y', Buffer.from('y'), { exclusive: true }), 'BACKEND_AUTH');
        await assertRejects(b.get('x'), 'BACKEND_AUTH');
        await assertRejects(collectList(b), 'BACKEND_AUTH');
      } finally {
        await b.close();
      }
      const withRetries = new RetryingBackend(s3(prefix, { credentials: wrong }), { sleep: async () => {} });
      await assertRejects(withRetries.put('z', Buffer.from('z')), 'BACKEND_AUTH');
      await withRetries.close();
      assert.deepEqual(await rawKeys(cluster.client, bucket, `${prefix}/`), []);
    });

    test('credentials and region from the shared files, as every S3 tool reads them', async () => {
      const prefix = freshPrefix();
      const dir = await mkdtemp(join(tmpdir(), 'chunkyard-aws-'));
      try {
        await writeFile(
          join(dir, 'credentials'),
          `[default]\naws_access_key_id = ${process.env.AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${process.env.AWS_SECRET_ACCESS_KEY}\n`,
        );
        await writeFile(join(dir, 'config'), '[default]\nregion = eu-central-1\n');
        const script = `
          const { openBackend } = await import(${JSON.stringify(new URL('../../src/backend/location.js', import.meta.url).href)});
          const b = await openBackend(${JSON.stringify(`s3://${bucket}/${prefix}`)});
          await b.put('from-file', Buffer.from('ok'));
          await b.close();`;
        const env: NodeJS.ProcessEnv = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config') };
        delete env.AWS_ACCESS_KEY_ID;
        delete env.AWS_SECRET_ACCESS_KEY;
        delete env.AWS_REGION;
        const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
        assert.equal(child.status, 0, child.stderr);
        assert.deepEqual(await rawKeys(cluster.client, bucket, `${prefix}/`), [`${prefix}/from-file`]);
      } finally {
        await rm(dir, { recursive: true });
        await emptyPrefix(cluster.client, bucket, prefix);
      }
    });

    test('missing bucket: STORE_NOT_FOUND at open and on use', async () => {
      const location = `s3://chunkyard-no-such-bucket-${randomBytes(4).toString('hex')}/p`;
      await assertRejects(openS3Backend(location, { endpoint: cluster.endpoint }), 'STORE_NOT_FOUND');
      await assertRejects(openBackend(location, { s3Endpoint: cluster.endpoint }), 'STORE_NOT_FOUND');
      const b = new S3Backend(location, { endpoint: cluster.endpoint });
      try {
        await assertRejects(b.put('x', Buffer.from('x')), 'STORE_NOT_FOUND');
        await assertRejects(collectList(b), 'STORE_NOT_FOUND');
      } finally {
        await b.close();
      }
    });

    test('unreachable endpoint (a closed loopback port): BACKEND_UNAVAILABLE', async () => {
      const port = await closedPort();
      const endpoint = `http://127.0.0.1:${port}`;
      await assertRejects(openS3Backend(`s3://${bucket}/x`, { endpoint }), 'BACKEND_UNAVAILABLE');
      await assertRejects(openBackend(`s3://${bucket}/x`, { s3Endpoint: endpoint }), 'BACKEND_UNAVAILABLE');
    });

    test('a request that gets no answer times out with BACKEND_UNAVAILABLE', async () => {
      // A TCP server that accepts and never answers: a hung service.
      const sockets = new Set<Socket>();
      const server: Server = createServer((s) => {
        sockets.add(s);
        s.on('error', () => {});
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const b = new S3Backend(`s3://${bucket}/x`, { endpoint: `http://127.0.0.1:${port}`, requestTimeoutMs: 500 });
      try {
        const err = await b.get('anything').then(() => undefined, (e: unknown) => e);
        assertCode(err, 'BACKEND_UNAVAILABLE');
        assert.match((err as Error).message, /timeout|timed out/i);
      } finally {
        await b.close();
        for (const s of sockets) s.destroy();
        await new Promise((r) => server.close(r));
      }
    });

    test('an answer cut off mid-body is BACKEND_UNAVAILABLE, never short data', async () => {
      // A service that announces 1000 bytes, sends 10 and drops the connection.
      const server: Server = createServer((s) => {
        s.on('error', () => {});
        s.once('data', () => {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n0123456789');
          setTimeout(() => s.destroy(), 20);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const b = new S3Backend(`s3://${bucket}/x`, { endpoint: `http://127.0.0.1:${port}` });
      try {
        await assertRejects(b.get('cut'), 'BACKEND_UNAVAILABLE', 'get');
        const read = async (): Promise<void> => {
          for await (const _ of b.getStream('cut')) void _;
        };
        await assertRejects(read(), 'BACKEND_UNAVAILABLE', 'getStream');
      } finally {
        await b.close();
        await new Promise((r) => server.close(r));
      }
    });

    // radosgw stopped mid-upload: test/backend/s3-faults.test.ts (a private cluster: never an
    // outage of the shared one).

    describe('RetryingBackend over FaultyBackend over radosgw', () => {
      const fast = { sleep: async () => {}, attempts: 4 };
      test('transient failures then success; a persistent failure surfaces', async () => {
        const prefix = freshPrefix();
        const faulty = new FaultyBackend(s3(prefix), {
          schedule: (op, name, call) =>
            (op === 'put' && call <= 2) || (op === 'get' && call === 1) || (op === 'list' && call === 1) || (op === 'put' && name === 'broken')
              ? { error: transientFault(`injected 503 for ${op} ${name}`) }
              : undefined,
        });
        const b = new RetryingBackend(faulty, fast);
        try {
          await b.put('a', Buffer.from('alpha'));
          assert.equal(faulty.injected.get('put'), 2);
          assert.deepEqual(await b.get('a'), Buffer.from('alpha'));
          assert.deepEqual((await collectList(b)).map((i) => i.name), ['a']);
          await assertRejects(b.put('broken', Buffer.from('x')), 'BACKEND_UNAVAILABLE');
          assert.equal(faulty.injected.get('put'), 2 + fast.attempts);
          assert.equal(await b.stat('broken'), undefined);
          // Not transient: not retried.
          await assertRejects(b.get('missing'), 'OBJECT_NOT_FOUND');
          assert.equal(faulty.injected.get('get'), 1);
        } finally {
          await b.close();
          await emptyPrefix(cluster.client, bucket, prefix);
        }
      });

      test('an exclusive put whose answer was lost: ours → success, someone else’s → OBJECT_EXISTS', async () => {
        const prefix = freshPrefix();
        const faulty = new FaultyBackend(s3(prefix), {
          schedule: (op, name, call) =>
            op === 'put' && call === 1 ? { error: transientFault('connection reset after the PUT'), afterSuccess: true } : undefined,
        });
        const b = new RetryingBackend(faulty, fast);
        const raw = s3(prefix);
        try {
          await b.put('mine', Buffer.from('our bytes'), { exclusive: true });
          assert.deepEqual(await b.get('mine'), Buffer.from('our bytes'));
          await assertRejects(b.put('mine', Buffer.from('our bytes again'), { exclusive: true }), 'OBJECT_EXISTS');

          await raw.put('theirs', Buffer.from('their bytes'));
          const faulty2 = new FaultyBackend(raw, {
            schedule: (op, _n, call) => (op === 'put' && call === 1 ? { error: transientFault('503') } : undefined),
          });
          await assertRejects(new RetryingBackend(faulty2, fast).put('theirs', Buffer.from('our bytes'), { exclusive: true }), 'OBJECT_EXISTS');
          assert.deepEqual(await raw.get('theirs'), Buffer.from('their bytes'));
        } finally {
          await b.close();
          await raw.close();
          await emptyPrefix(cluster.client, bucket, prefix);
        }
      });
    });

    describe('openBackend', () => {
      test('s3:// opens a retrying S3 backend; a path opens FsBackend; other schemes are refused', async () => {
        const prefix = freshPrefix();
        const b = await openBackend(`s3://${bucket}/${prefix}`, { s3Endpoint: cluster.endpoint });
        try {
          assert.ok(b instanceof RetryingBackend);
          assert.equal(b.location, `s3://${bucket}/${prefix}`);
          await b.put('config', Buffer.from('c'), { exclusive: true });
          assert.deepEqual(await rawKeys(cluster.client, bucket, `${prefix}/`), [`${prefix}/config`]);
        } finally {
          await b.close();
          await emptyPrefix(cluster.client, bucket, prefix);
        }
        const dir = await import('node:fs/promises').then((f) => f.mkdtemp('/tmp/chunkyard-loc-'));
        const fs = await openBackend(dir);
        assert.ok(fs instanceof FsBackend);
        await fs.close();
        await import('node:fs/promises').then((f) => f.rm(dir, { recursive: true }));
        await assertRejects(openBackend(`${dir}-missing`), 'STORE_NOT_FOUND');
        for (const bad of ['http://example.com/x', 'file:///tmp/x', 's3://', 's3://Bad_Bucket/x', `s3://${bucket}/a b`, '']) {
          await assertRejects(openBackend(bad), 'BAD_ARGUMENT', bad);
        }
      });
    });
  });
}

test('mapS3Error: SDK errors to stable codes', () => {
  const sdk = (name: string, status?: number, code?: string): unknown =>
    Object.assign(new Error(name), { name, ...(code ? { code } : {}), $metadata: { httpStatusCode: status } });
  const cases: Array<[unknown, ErrorCode]> = [
    [sdk('NoSuchKey', 404), 'OBJECT_NOT_FOUND'],
    [sdk('NoSuchBucket', 404), 'STORE_NOT_FOUND'],
    [sdk('PreconditionFailed', 412), 'OBJECT_EXISTS'],
    [sdk('InvalidAccessKeyId', 403), 'BACKEND_AUTH'],
    [sdk('SignatureDoesNotMatch', 403), 'BACKEND_AUTH'],
    [sdk('InternalError', 500), 'BACKEND_UNAVAILABLE'],
    [sdk('ServiceUnavailable', 503), 'BACKEND_UNAVAILABLE'],
    [sdk('SlowDown', 503), 'BACKEND_UNAVAILABLE'],
    [sdk('TimeoutError'), 'BACKEND_UNAVAILABLE'],
    [sdk('ConditionalRequestConflict', 409), 'BACKEND_UNAVAILABLE'],
    [sdk('Error', undefined, 'ECONNRESET'), 'BACKEND_UNAVAILABLE'],
    [sdk('Error', undefined, 'ECONNREFUSED'), 'BACKEND_UNAVAILABLE'],
    [sdk('InvalidArgument', 400), 'IO_ERROR'],
  ];
  for (const [err, code] of cases) assert.equal(mapS3Error(err, 'op', 'name').code, code, String(err));
});

async function collectList(b: Backend): Promise<Array<{ name: string }>> {
  const out: Array<{ name: string }> = [];
  for await (const info of b.list('')) out.push(info);
  return out;
}

function assertCode(err: unknown, code: ErrorCode, label?: string): void {
  assert.ok(
    err instanceof ChunkyardError && err.code === code,
    `${label ? `${label}: ` : ''}expected ${code}, got ${err instanceof ChunkyardError ? `${err.code}: ${err.message}` : String(err)}`,
  );
}

async function assertRejects(p: Promise<unknown>, code: ErrorCode, label?: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e ?? new Error('rejected with nothing'),
  );
  assert.ok(err !== undefined, `${label ? `${label}: ` : ''}expected ${code}, but it succeeded`);
  assertCode(err, code, label);
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}
