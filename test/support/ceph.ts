/**
 * Finds or starts the Ceph radosgw the S3 tests run against.
 * - CHUNKYARD_S3_ENDPOINT set: use it (credentials from the AWS_* variables).
 * - else: a running scripts/ceph.sh cluster (`npm test` starts one for the whole run:
 *   scripts/test.mjs), or one started here with `scripts/ceph.sh run`
 *   (installs Ceph if missing and allowed) as a child of this process, which `release()`
 *   stops and reaps; a cluster that was already running is left alone.
 * - If no cluster can be had: outside CI the tests are skipped with a loud reason; with CI
 *   set (CI=true) that is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';

const CEPH_SH = fileURLToPath(new URL('../../../scripts/ceph.sh', import.meta.url));

export interface S3TestCluster {
  endpoint: string;
  /** A raw SDK client for setting up and inspecting (not the code under test). */
  client: S3Client;
  /**
   * Outages of the S3 service, when the cluster is scripts/ceph.sh's (not an external
   * CHUNKYARD_S3_ENDPOINT): stop radosgw alone, start it again (resolves once it answers).
   */
  outage?: { stop(): Promise<void>; start(): Promise<void> };
  /** Creates a fresh bucket with a random name. */
  newBucket(): Promise<string>;
  /** Empties and removes a bucket. */
  dropBucket(bucket: string): Promise<void>;
  /** Empties and removes the buckets made by newBucket, stops a cluster started here. */
  release(): Promise<void>;
}

export function rawClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? 'us-east-1',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The cluster, or a reason to skip (never under CI=true: then this throws). */
export async function s3TestCluster(): Promise<S3TestCluster | { skip: string }> {
  let runner: ChildProcess | undefined;
  if (!process.env.CHUNKYARD_S3_ENDPOINT) {
    if (!cephReady()) {
      // scripts/test.mjs already tried to start the one cluster of the run: a file does not
      // start one of its own beside the others.
      const started = process.env.CHUNKYARD_S3_UNAVAILABLE ?? (await runCluster());
      if (typeof started === 'string') {
        const reason = `no Ceph cluster for the S3 tests: ${started}`;
        if (process.env.CI && process.env.CI !== 'false') throw new Error(reason);
        console.error(`\n*** SKIPPING S3 TESTS: ${reason}\n`);
        return { skip: reason };
      }
      runner = started;
    }
    const env = spawnSync('bash', [CEPH_SH, 'env'], { encoding: 'utf8' }).stdout;
    for (const m of env.matchAll(/([A-Z0-9_]+)=(\S+)/g)) process.env[m[1]!] = m[2]!;
  }
  const ours = /CHUNKYARD_S3_ENDPOINT=(\S+)/.exec(spawnSync('bash', [CEPH_SH, 'env'], { encoding: 'utf8' }).stdout)?.[1];
  const external = process.env.CHUNKYARD_S3_ENDPOINT !== ours || !cephReady();
  const endpoint = process.env.CHUNKYARD_S3_ENDPOINT!;
  const client = rawClient(endpoint);
  const buckets: string[] = [];
  return {
    endpoint,
    client,
    // Outages never on a shared cluster (other test runs use it): privateCluster() has them.
    outage: external || runner === undefined ? undefined : { stop: () => cephCommand('rgw-stop'), start: () => cephCommand('rgw-start') },
    async newBucket() {
      const name = `chunkyard-test-${randomBytes(6).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      buckets.push(name);
      return name;
    },
    async dropBucket(bucket: string) {
      await emptyPrefix(client, bucket, '');
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      buckets.splice(buckets.indexOf(bucket), 1);
    },
    async release() {
      if (runner !== undefined) {
        client.destroy();
        const exited = new Promise((r) => runner!.once('exit', r));
        spawnSync('bash', [CEPH_SH, 'stop'], { stdio: 'inherit' });
        await exited;
        return;
      }
      for (const bucket of buckets) {
        await emptyPrefix(client, bucket, '').catch(() => {});
        await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      }
      client.destroy();
    },
  };
}

/** Runs a scripts/ceph.sh command without blocking the event loop. */
function cephCommand(command: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [CEPH_SH, command], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ceph.sh ${command}: ${code} ${stderr}`))));
  });
}

function cephReady(env: NodeJS.ProcessEnv = process.env): boolean {
  return spawnSync('bash', [CEPH_SH, 'status'], { env, stdio: 'ignore' }).status === 0;
}

/** `scripts/ceph.sh run` as our child, once ready; or why it could not start. */
async function runCluster(env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess | string> {
  const child = spawn('bash', [CEPH_SH, 'run'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  const deadline = Date.now() + 15 * 60_000; // a first start may install the packages
  while (Date.now() < deadline) {
    if (exited !== undefined) return `scripts/ceph.sh run exited (${exited}): ${stderr.trim()}`;
    if (cephReady(env)) {
      child.stderr!.resume();
      return child;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGTERM');
  return `scripts/ceph.sh run was not ready within 15 minutes: ${stderr.trim()}`;
}

/** Removes every object and unfinished multipart upload under a key prefix. */
export async function emptyPrefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
  for (const upload of await pendingUploads(client, bucket, prefix)) {
    await client.send(
      new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }),
    );
  }
}

/** Unfinished multipart uploads under a key prefix. */
export async function pendingUploads(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<Array<{ key: string; uploadId: string }>> {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

/** All keys under a prefix, raw (not through the backend under test). */
export async function rawKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

/**
 * A throwaway cluster of this test file's own (scripts/ceph.sh with its own CEPH_DIR and free
 * ports), for faults that would disturb other users of the shared one: radosgw stopped,
 * killed -9 or paused (SIGSTOP) while chunkyard works, then back. Skips like s3TestCluster
 * when no Ceph can be had (a failure under CI=true).
 */
export interface PrivateCluster {
  endpoint: string;
  /** process.env plus this cluster's endpoint and test credentials (for child processes). */
  env: NodeJS.ProcessEnv;
  client: S3Client;
  newBucket(): Promise<string>;
  /** radosgw stops (SIGTERM) or is killed (SIGKILL); mon and OSD keep running. */
  rgwStop(): Promise<void>;
  rgwKill(): Promise<void>;
  /** Starts radosgw again; resolves once it answers. */
  rgwStart(): Promise<void>;
  /** SIGSTOP / SIGCONT to radosgw: connections are accepted (by the kernel) but never answered. */
  rgwPause(): void;
  rgwResume(): void;
  /** Stops the daemons and deletes the cluster's directory. */
  release(): Promise<void>;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function privateCluster(name: string): Promise<PrivateCluster | { skip: string }> {
  const dir = `/tmp/${name}-ceph-${process.pid}`;
  const [mon, rgw] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CEPH_DIR: dir,
    CEPH_MON_PORT: String(mon),
    CEPH_RGW_PORT: String(rgw),
    CEPH_MEMSTORE_BYTES: String(2 * 1024 * 1024 * 1024),
  };
  const runner = await runCluster(env);
  if (typeof runner === 'string') {
    const reason = `no private Ceph cluster for the S3 fault tests: ${runner}`;
    if (process.env.CI && process.env.CI !== 'false') throw new Error(reason);
    console.error(`\n*** SKIPPING S3 FAULT TESTS: ${reason}\n`);
    return { skip: reason };
  }
  const vars = spawnSync('bash', [CEPH_SH, 'env'], { env, encoding: 'utf8' }).stdout;
  for (const m of vars.matchAll(/([A-Z0-9_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
  const endpoint = env.CHUNKYARD_S3_ENDPOINT!;
  const client = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const { readFileSync } = await import('node:fs');
  const rgwPid = (): number => Number(readFileSync(`${dir}/run/rgw.pid.sup`, 'utf8').trim());
  return {
    endpoint,
    env,
    client,
    async newBucket() {
      const bucket = `chunkyard-fault-${randomBytes(6).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    rgwStop: () => cephCommand('rgw-stop', env),
    rgwKill: () => cephCommand('rgw-kill', env),
    rgwStart: () => cephCommand('rgw-start', env),
    rgwPause: () => process.kill(rgwPid(), 'SIGSTOP'),
    rgwResume: () => process.kill(rgwPid(), 'SIGCONT'),
    async release() {
      client.destroy();
      try {
        process.kill(rgwPid(), 'SIGCONT');
      } catch {
        // not running
      }
      const exited = new Promise((r) => runner.once('exit', r));
      spawnSync('bash', [CEPH_SH, 'stop'], { env, stdio: 'inherit' });
      await exited;
    },
  };
}
