#!/usr/bin/env node
// Deletes every object (and unfinished multipart upload) under PREFIX of BUCKET on the
// cluster of CHUNKYARD_S3_ENDPOINT; with --drop the bucket too. For the S3 benches.
//   node bench/s3-empty.mjs BUCKET PREFIX [--drop]
import {
  AbortMultipartUploadCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client,
} from '@aws-sdk/client-s3';

const [bucket, prefix = ''] = process.argv.slice(2);
const client = new S3Client({
  endpoint: process.env.CHUNKYARD_S3_ENDPOINT,
  forcePathStyle: true,
  region: process.env.AWS_REGION ?? 'us-east-1',
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
for (;;) {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key }));
  if (keys.length === 0) break;
  await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
}
const up = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
for (const u of up.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
if (process.argv.includes('--drop')) await client.send(new DeleteBucketCommand({ Bucket: bucket }));
client.destroy();
