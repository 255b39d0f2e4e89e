#!/usr/bin/env node
// Load test of the ingest daemon on loopback (docs/daemon.md, "Measured"):
//
//   node bench/daemon-load.mjs [--streams 8] [--size 48] [--rounds 1] [--data tar|random]
//                              [--workdir DIR] [--max-seconds 600] [--profile DIR] [--json]
//
// For the same data, one round measures
//   1. in-process: Store.backup (from dist/) of the N streams, one after another and N at
//      once, into fresh stores;
//   2. the daemon: `chunkyard serve` on a fresh store, N concurrent pushStream uploads,
//      while small requests (GET /healthz, GET of a snapshot list) go out every 20 ms on a
//      keep-alive connection; the daemon's peak RSS (VmHWM in /proc/PID/status).
// The streams are generations of one data set sharing most bytes: a tar of /usr/share/doc
// made on the fly (--data tar, the default when tar and the directory exist) or seeded
// random bytes, each generation with a few overwritten regions and an inserted block of its
// own. Everything is bounded: N × size MiB of data, --rounds rounds, --max-seconds in all.
// --profile DIR runs the daemon under node --cpu-prof and leaves the profile in DIR.
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { Store } = await import(join(root, 'dist/src/store/store.js'));
const { pushStream, fetchSnapshot } = await import(join(root, 'dist/src/daemon/client.js'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : args[i + 1];
};
const STREAMS = Number(opt('--streams', 8));
const SIZE = Number(opt('--size', 48)) << 20;
const ROUNDS = Number(opt('--rounds', 1));
const MAX_SECONDS = Number(opt('--max-seconds', 600));
const WORK = resolve(opt('--workdir', '/tmp/chunkyard-daemon-load'));
const PROFILE = opt('--profile', undefined);
const JSON_OUT = args.includes('--json');
/** Extra node flags for the daemon, e.g. --node-flags "--trace-gc" (space-separated). */
const NODE_FLAGS = (opt('--node-flags', '') ?? '').split(' ').filter(Boolean);
const DATA = opt('--data', existsSync('/usr/share/doc') && spawnSync('tar', ['--version']).status === 0 ? 'tar' : 'random');
const BIN = join(root, 'bin/chunkyard');
const TOKEN = 'bench-writer-token';
const WARM_UP_BYTES = 32 << 20;

const deadline = setTimeout(() => {
  console.error(`daemon-load: over --max-seconds ${MAX_SECONDS}; stopping`);
  for (const p of children) p.kill('SIGKILL');
  process.exit(1);
}, MAX_SECONDS * 1000);
deadline.unref();
const children = new Set();

function log(msg) {
  if (!JSON_OUT) console.error(msg);
}

function random(seed, length) {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  key.writeUInt32LE(0x6c6f6164, 4);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

function baseData() {
  if (DATA === 'tar') {
    const r = spawnSync('tar', ['-cf', '-', '-C', '/usr/share', 'doc'], { maxBuffer: 1 << 30 });
    if (r.stdout.length >= SIZE / 2) {
      // Fewer bytes than asked: repeat the tar (the repeat dedupes, as real data would).
      const parts = [];
      for (let n = 0; n < SIZE; n += r.stdout.length) parts.push(r.stdout);
      return Buffer.concat(parts).subarray(0, SIZE);
    }
  }
  return random(1, SIZE);
}

/** Generation i: the base with 8 overwritten 64 KiB regions and a 256 KiB block of its own inserted. */
function generation(base, i) {
  const g = Buffer.from(base);
  let r = 12345 + i * 7919;
  const next = () => (r = (r * 1103515245 + 12345) >>> 0);
  for (let k = 0; k < 8; k++) random(1000 + i * 16 + k, 65536).copy(g, next() % (g.length - 65536));
  const at = next() % g.length;
  return Buffer.concat([g.subarray(0, at), random(5000 + i, 256 << 10), g.subarray(at)]);
}

/** A stream of `buf` in 1 MiB pieces (as a file read would deliver it). */
function pieces(buf) {
  const out = [];
  for (let o = 0; o < buf.length; o += 1 << 20) out.push(buf.subarray(o, o + (1 << 20)));
  return Readable.from(out);
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function inProcess(gens, concurrent, dir) {
  rmSync(dir, { recursive: true, force: true });
  await Store.init(dir);
  const store = await Store.open(dir);
  try {
    const cpu0 = ownCpu();
    const t0 = process.hrtime.bigint();
    if (concurrent) await Promise.all(gens.map((g, i) => store.backup(pieces(g), { target: `t${i}` })));
    else for (const [i, g] of gens.entries()) await store.backup(pieces(g), { target: `t${i}` });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { seconds, cpu: ownCpu() - cpu0, stats: await store.stats() };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** CPU seconds this process has used so far. */
function ownCpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function startDaemon(store, tokens) {
  const nodeArgs = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resolve(PROFILE)}`] : []), ...NODE_FLAGS];
  const proc = spawn(process.execPath, [...nodeArgs, BIN, 'serve', store, '--listen', '127.0.0.1:0', '--tokens', tokens, '--process-interval', '0', '--max-uploads', String(Math.max(16, STREAMS))], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const port = await new Promise((res, rej) => {
    const t = setInterval(() => {
      const m = /"event":"listening","url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(err);
      if (m) {
        clearInterval(t);
        res(Number(m[1]));
      }
    }, 20);
    exited.then((e) => {
      clearInterval(t);
      rej(new Error(`serve exited (${e.code ?? e.signal}): ${err}`));
    });
  });
  return { proc, url: `http://127.0.0.1:${port}`, exited, log: () => err };
}

/** Small requests at a steady pace on one keep-alive connection; latencies in ms per kind. */
function probe(url, intervalMs = 20) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const lat = { healthz: [], list: [] };
  let stop = false;
  let n = 0;
  const one = (path, into) =>
    new Promise((res) => {
      const t0 = process.hrtime.bigint();
      const req = request(new URL(path, url), { agent, headers: { Authorization: `Bearer ${TOKEN}` } }, (r) => {
        r.resume();
        r.on('end', () => {
          if (r.statusCode === 200) into.push(Number(process.hrtime.bigint() - t0) / 1e6);
          res();
        });
      });
      req.on('error', () => res());
      req.end();
    });
  const loop = (async () => {
    while (!stop) {
      const started = Date.now();
      await (n++ % 2 === 0 ? one('/healthz', lat.healthz) : one('/v1/targets/t0/snapshots', lat.list));
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      stop = true;
      await loop;
      agent.destroy();
      return lat;
    },
  };
}

async function viaDaemon(gens, dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const store = join(dir, 'store');
  const tokens = join(dir, 'tokens.json');
  await Store.init(store);
  writeFileSync(tokens, JSON.stringify([{ token: TOKEN, targets: ['*'], write: true }]));
  const d = await startDaemon(store, tokens);
  try {
    // A fresh process compiles its hot paths as it goes; the in-process runs happen in a
    // warm one. Two uploads of unrelated random bytes (nothing of them dedupes with the
    // generations) warm the daemon up first.
    await Promise.all([0, 1].map((i) => pushStream(d.url, pieces(random(777 + i, WARM_UP_BYTES / 2)), { target: 'warm-up', token: TOKEN })));
    // Idle latency: the small requests with nothing else going on.
    const idleProbe = probe(d.url);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await idleProbe.stop();
    const busyProbe = probe(d.url);
    const cpu0 = cpuSeconds(d.proc.pid);
    const clientCpu0 = ownCpu();
    const t0 = process.hrtime.bigint();
    const snaps = await Promise.all(gens.map((g, i) => pushStream(d.url, pieces(g), { target: `t${i}`, token: TOKEN })));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = cpuSeconds(d.proc.pid) - cpu0;
    const clientCpu = ownCpu() - clientCpu0;
    const busy = await busyProbe.stop();
    const rss = peakRss(d.proc.pid);
    // The last generation back, byte for byte (by digest).
    const last = gens.length - 1;
    const h = createHash('sha256');
    for await (const b of await fetchSnapshot(d.url, snaps[last].id, { token: TOKEN })) h.update(b);
    const same = h.digest('hex') === createHash('sha256').update(gens[last]).digest('hex');
    d.proc.kill('SIGTERM');
    const exit = await d.exited;
    children.delete(d.proc);
    const stats = await (async () => {
      const s = await Store.open(store, { readOnly: true });
      try {
        return await s.stats();
      } finally {
        await s.close();
      }
    })();
    return { seconds, cpu, clientCpu, idle, busy, rss, same, exit, stats };
  } finally {
    d.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The floor of the transport: the same uploads into a bare node:http server (in a child
 * process) that reads and drops the bodies. What it costs is what any node daemon pays
 * before it does anything with the bytes.
 */
const SINK = `
  const { createServer } = require('node:http');
  const s = createServer((req, res) => { req.on('data', () => {}); req.on('end', () => res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: 'x' }))); });
  s.listen(0, '127.0.0.1', () => process.stderr.write('listening on http://127.0.0.1:' + s.address().port + '\\n'));
  process.on('SIGTERM', () => process.exit(0));`;

async function transportFloor(gens) {
  const proc = spawn(process.execPath, ['-e', SINK], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  try {
    const port = await new Promise((res) => {
      const t = setInterval(() => {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
        if (m) {
          clearInterval(t);
          res(Number(m[1]));
        }
      }, 20);
    });
    const cpu0 = cpuSeconds(proc.pid);
    const clientCpu0 = ownCpu();
    const t0 = process.hrtime.bigint();
    await Promise.all(gens.map((g, i) => pushStream(`http://127.0.0.1:${port}`, pieces(g), { target: `t${i}` })));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { seconds, cpu: cpuSeconds(proc.pid) - cpu0, clientCpu: ownCpu() - clientCpu0 };
  } finally {
    proc.kill('SIGKILL');
    children.delete(proc);
  }
}

mkdirSync(WORK, { recursive: true });
if (PROFILE) mkdirSync(resolve(PROFILE), { recursive: true });
log(`data: ${DATA}, ${STREAMS} streams of ${(SIZE / 2 ** 20).toFixed(0)} MiB (+256 KiB), ${ROUNDS} round(s), work directory ${WORK}`);
const base = baseData();
const gens = Array.from({ length: STREAMS }, (_, i) => generation(base, i));
const logical = gens.reduce((n, g) => n + g.length, 0);
const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  const seq = await inProcess(gens, false, join(WORK, 'inproc'));
  log(`round ${r + 1}: in-process, one after another: ${(logical / seq.seconds / 1e6).toFixed(0)} MB/s`);
  const conc = await inProcess(gens, true, join(WORK, 'inproc'));
  log(`round ${r + 1}: in-process, ${STREAMS} at once: ${(logical / conc.seconds / 1e6).toFixed(0)} MB/s`);
  const floor = await transportFloor(gens);
  log(`round ${r + 1}: node:http sink, ${STREAMS} uploads: ${(logical / floor.seconds / 1e6).toFixed(0)} MB/s`);
  const dmn = await viaDaemon(gens, join(WORK, 'daemon'));
  log(`round ${r + 1}: daemon, ${STREAMS} uploads: ${(logical / dmn.seconds / 1e6).toFixed(0)} MB/s, peak RSS ${(dmn.rss / 2 ** 20).toFixed(0)} MiB`);
  if (!dmn.same) throw new Error('the last generation did not come back byte-exact');
  if (dmn.exit.code !== 0) throw new Error(`the daemon exited ${JSON.stringify(dmn.exit)} on SIGTERM`);
  // The daemon's store also holds the 32 MiB of random warm-up bytes, all unique.
  if (dmn.stats.uniqueBytes !== conc.stats.uniqueBytes + WARM_UP_BYTES) throw new Error(`unique bytes differ: daemon ${dmn.stats.uniqueBytes} - ${WARM_UP_BYTES} warm-up, in-process ${conc.stats.uniqueBytes}`);
  rounds.push({
    inProcessSequentialMBps: logical / seq.seconds / 1e6,
    inProcessConcurrentMBps: logical / conc.seconds / 1e6,
    daemonMBps: logical / dmn.seconds / 1e6,
    // CPU seconds per GB of logical data: what the work costs, whatever else runs on the machine.
    inProcessSequentialCpuPerGB: seq.cpu / (logical / 1e9),
    inProcessConcurrentCpuPerGB: conc.cpu / (logical / 1e9),
    daemonCpuPerGB: dmn.cpu / (logical / 1e9),
    clientCpuPerGB: dmn.clientCpu / (logical / 1e9),
    sinkMBps: logical / floor.seconds / 1e6,
    sinkCpuPerGB: floor.cpu / (logical / 1e9),
    sinkClientCpuPerGB: floor.clientCpu / (logical / 1e9),
    daemonPeakRssBytes: dmn.rss,
    uniqueBytes: conc.stats.uniqueBytes,
    dedupeRatio: conc.stats.dedupeRatio,
    latencyMs: Object.fromEntries(
      ['idle', 'busy'].flatMap((when) =>
        ['healthz', 'list'].map((kind) => {
          const s = [...dmn[when][kind]].sort((a, b) => a - b);
          return [`${kind}-${when}`, { n: s.length, p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] }];
        }),
      ),
    ),
  });
}

const summary = {
  data: DATA,
  streams: STREAMS,
  logicalBytes: logical,
  rounds: rounds.length,
  inProcessSequentialMBps: median(rounds.map((r) => r.inProcessSequentialMBps)),
  inProcessConcurrentMBps: median(rounds.map((r) => r.inProcessConcurrentMBps)),
  daemonMBps: median(rounds.map((r) => r.daemonMBps)),
  daemonPeakRssBytes: Math.max(...rounds.map((r) => r.daemonPeakRssBytes ?? 0)),
  inProcessSequentialCpuPerGB: median(rounds.map((r) => r.inProcessSequentialCpuPerGB)),
  inProcessConcurrentCpuPerGB: median(rounds.map((r) => r.inProcessConcurrentCpuPerGB)),
  daemonCpuPerGB: median(rounds.map((r) => r.daemonCpuPerGB)),
  clientCpuPerGB: median(rounds.map((r) => r.clientCpuPerGB)),
  sinkMBps: median(rounds.map((r) => r.sinkMBps)),
  sinkCpuPerGB: median(rounds.map((r) => r.sinkCpuPerGB)),
  sinkClientCpuPerGB: median(rounds.map((r) => r.sinkClientCpuPerGB)),
  dedupeRatio: rounds[0].dedupeRatio,
};
summary.ratio = summary.daemonMBps / Math.max(summary.inProcessSequentialMBps, summary.inProcessConcurrentMBps);
summary.latencyMs = Object.fromEntries(Object.keys(rounds[0].latencyMs).map((k) => [k, { n: rounds.reduce((n, r) => n + r.latencyMs[k].n, 0), p50: median(rounds.map((r) => r.latencyMs[k].p50)), p99: median(rounds.map((r) => r.latencyMs[k].p99)), max: Math.max(...rounds.map((r) => r.latencyMs[k].max)) }]));

if (JSON_OUT) {
  console.log(JSON.stringify({ summary, rounds }, null, 2));
} else {
  const mb = (x) => `${x.toFixed(0)} MB/s`;
  const rows = [
    ['data', `${DATA}: ${STREAMS} generations, ${(logical / 2 ** 20).toFixed(0)} MiB in all, dedupe ratio ${summary.dedupeRatio.toFixed(2)}`],
    ['in-process, one after another', `${mb(summary.inProcessSequentialMBps)}  (${summary.inProcessSequentialCpuPerGB.toFixed(2)} CPU s/GB)`],
    [`in-process, ${STREAMS} at once`, `${mb(summary.inProcessConcurrentMBps)}  (${summary.inProcessConcurrentCpuPerGB.toFixed(2)} CPU s/GB)`],
    [`daemon, ${STREAMS} uploads at once`, `${mb(summary.daemonMBps)}  (daemon ${summary.daemonCpuPerGB.toFixed(2)} + clients ${summary.clientCpuPerGB.toFixed(2)} CPU s/GB)`],
    ['daemon / best in-process', `${(summary.ratio * 100).toFixed(0)} %`],
    [`node:http sink (drops bodies), ${STREAMS} uploads`, `${mb(summary.sinkMBps)}  (server ${summary.sinkCpuPerGB.toFixed(2)} + clients ${summary.sinkClientCpuPerGB.toFixed(2)} CPU s/GB)`],
    ['daemon peak RSS (VmHWM)', `${(summary.daemonPeakRssBytes / 2 ** 20).toFixed(0)} MiB`],
    ...Object.entries(summary.latencyMs).map(([k, v]) => [`GET ${k.startsWith('healthz') ? '/healthz' : 'snapshot list'} ${k.endsWith('busy') ? 'during uploads' : 'idle'}`, `p50 ${v.p50.toFixed(1)} ms, p99 ${v.p99.toFixed(1)} ms, max ${v.max.toFixed(1)} ms (n=${v.n})`]),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(rows.map(([a, b]) => `${a.padEnd(w)}  ${b}`).join('\n'));
}
