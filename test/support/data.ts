/** Test data: deterministic pseudo-random bytes, data with repeats, and real files. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createCipheriv, createHash } from 'node:crypto';

/** Pseudo-random bytes from a seed (AES-128-CTR keystream): the same seed always gives the same bytes. */
export function prng(seed: number, length: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  key.writeUInt32LE(0x63686b79, 4); // "chky": keeps seed 0 from being an all-zero key
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** A stream of `buf` cut into pieces of varying sizes (exercises the batcher). */
export function streamOf(buf: Uint8Array, pieceSeed = 1): Readable {
  const pieces: Uint8Array[] = [];
  let pos = 0;
  let r = pieceSeed;
  while (pos < buf.length) {
    r = (r * 1103515245 + 12345) >>> 0;
    const n = Math.min(buf.length - pos, 1 + (r % 300_000));
    pieces.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return Readable.from(pieces, { objectMode: false });
}

/** Up to `limit` bytes of real files from system directories (text, binaries), concatenated. */
export function realData(limit: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= limit) return;
      const p = join(dir, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && st.size < 8 << 20) {
        try {
          const b = readFileSync(p);
          parts.push(b);
          total += b.length;
        } catch {
          // unreadable file: skip
        }
      }
    }
  };
  for (const d of ['/usr/share/doc', '/usr/lib/x86_64-linux-gnu', '/usr/bin']) walk(d);
  return Buffer.concat(parts).subarray(0, limit);
}

export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

/** SHA-256 (hex) of bytes: tests that restore the same snapshots many times compare digests. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * `sha256(data(key))`, computed once per key: for tests that restore the same snapshots after
 * every kill and compare them with data they would otherwise generate again each time.
 */
export function sha256Once<K>(data: (key: K) => Uint8Array): (key: K) => string {
  const made = new Map<K, string>();
  return (key) => {
    let d = made.get(key);
    if (d === undefined) made.set(key, (d = sha256(data(key))));
    return d;
  };
}

/** SHA-256 (hex) of a stream, without holding it whole (a restore compared with `sha256`). */
export async function streamSha256(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const p of stream) h.update(p);
  return h.digest('hex');
}

/**
 * Generation g of a "database file" for delta tests: the same pseudo-random bytes with
 * scattered small edits, 200 more per generation (the earlier ones stay).
 */
export function deltaGeneration(g: number, size = 6 << 20): Buffer {
  const b = prng(77, size);
  for (let k = 1; k <= g; k++) {
    const edits = prng(1000 + k, 4096);
    for (let i = 0; i < 200; i++) {
      const at = edits.readUInt32LE(i * 4) % (size - 16);
      edits.copy(b, at, 2048 + (i % 100) * 16, 2048 + (i % 100) * 16 + 12);
    }
  }
  return b;
}
