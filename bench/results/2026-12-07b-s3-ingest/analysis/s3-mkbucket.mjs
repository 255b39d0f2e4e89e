import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
const c = new S3Client({ endpoint: process.env.CHUNKYARD_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });
await c.send(new CreateBucketCommand({ Bucket: process.argv[2] }));
c.destroy();
