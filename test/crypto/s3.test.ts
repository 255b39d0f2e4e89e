/**
 * An encrypted store in an S3 bucket on the real radosgw: backup, restore, check, and no
 * object of the bucket (read with a raw S3 client) holds the plaintext marker.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { collect, prng } from '../support/data.js';
import { rawKeys, s3TestCluster, type S3TestCluster } from '../support/ceph.js';

process.env['CHUNKYARD_SCRYPT_LOG_N'] = '12';
process.env['CHUNKYARD_ARGON2_MEMORY_KIB'] = '256'; // and a cheap Argon2id (the default is 19 MiB)
const MARKER = 'S3-CRYPT-MARKER-5d1e';
let cluster: S3TestCluster | undefined;
let skip: string | undefined;
let cache: string;

before(async () => {
  const c = await s3TestCluster();
  if ('skip' in c) skip = c.skip;
  else cluster = c;
  cache = await mkdtemp(join(tmpdir(), 'crypt-s3-cache-'));
});

after(async () => {
  await cluster?.release();
  await rm(cache, { recursive: true, force: true });
});

test('an encrypted store in a radosgw bucket: round trip, check, no plaintext in any object', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const bucket = await cluster!.newBucket();
  const loc = `s3://${bucket}/enc`;
  const opts = { s3Endpoint: cluster!.endpoint, password: 's3 password' };
  await Store.init(loc, { ...opts, encryption: true, avgSize: 16384, packSize: 1 << 20 });
  const data = Buffer.concat([Buffer.from(`${MARKER}\n`.repeat(3000)), prng(77, 3 << 20)]);
  const store = await Store.open(loc, { ...opts, cacheDir: cache });
  let id: string;
  try {
    id = (await store.backup(Readable.from([data]), { target: 's3' })).id;
    const part = await collect(await store.restore(id, { start: 100_000, end: 2_000_000 }));
    assert.ok(part.equals(data.subarray(100_000, 2_000_000)), 'a range restores');
  } finally {
    await store.close();
  }
  const again = await Store.open(loc, { ...opts, readOnly: true });
  try {
    assert.ok((await collect(await again.restore(id))).equals(data));
  } finally {
    await again.close();
  }
  const report = await Store.check(loc, { ...opts, readData: true });
  assert.deepEqual(report.errors, []);
  const keys = await rawKeys(cluster!.client, bucket, 'enc/');
  assert.ok(keys.some((k) => k.includes('packs/')));
  for (const key of keys) {
    const got = await cluster!.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(bytes.includes(MARKER), false, `${key} holds the marker`);
  }
  await assert.rejects(Store.open(loc, { s3Endpoint: cluster!.endpoint, password: 'nope' }), { code: 'WRONG_PASSWORD' });
});
