/**
 * `chunkyard chunks <file|->`: cut a file (or standard input) into chunks with chunker v1 and
 * print them, one JSON object per line, or summary statistics with --stats. Reads in 8 MiB
 * slices (a file: two reused buffers, reads overlapped with chunking); memory does not grow
 * with the input.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ChunkyardError, badArgument } from '../../errors.js';
import { sliceStream } from '../../chunking/batcher.js';
import { createChunker } from '../../chunking/index.js';
import { parseSize, resolveChunkerParams } from '../../chunking/params.js';
import type { ChunkBatch } from '../../chunking/types.js';
import { oneOf } from '../args.js';
import { defineCommand } from '../command.js';
import { toHex, writeOut } from '../io.js';

export default defineCommand({
  name: 'chunks',
  summary: 'print the content-defined chunks of a file (offset, length, BLAKE3)',
  usage: '<file|-> [options]',
  description: [
    'Without --stats, prints one line per chunk: {"offset":N,"length":N,"hash":"<64 hex>"}.',
    'With --stats, prints one line: {"engine","chunks","bytes","minLength","maxLength",',
    '"avgLength","seconds"}. Sizes take K/M/G suffixes (binary: 64K = 65536). Given only',
    '--avg-size, min and max default to avg/4 and avg*4; the defaults are 16K/64K/256K.',
  ].join('\n'),
  flags: {
    engine: { type: 'string', value: 'native|wasm|auto', description: 'chunking engine (default auto)' },
    'min-size': { type: 'string', value: 'N', description: 'minimum chunk size (default avg/4)' },
    'avg-size': { type: 'string', value: 'N', description: 'target average chunk size, a power of two (default 64K)' },
    'max-size': { type: 'string', value: 'N', description: 'maximum chunk size (default avg*4)' },
    normalization: { type: 'string', value: '0..3', description: 'FastCDC normalization level (default 2)' },
    stats: { type: 'boolean', description: 'print summary statistics instead of the chunks' },
  },

  async run({ flags, positionals }, io) {
    if (positionals.length !== 1) {
      throw badArgument(
        `chunkyard chunks takes one input, a file path or - for standard input (got ${positionals.length})`,
      );
    }
    const size = (flag: 'min-size' | 'avg-size' | 'max-size'): number | undefined => {
      const text = flags[flag];
      return text === undefined ? undefined : parseSize(text, `--${flag}`);
    };
    let normalization: number | undefined;
    if (flags.normalization !== undefined) {
      if (!/^\d$/.test(flags.normalization)) {
        throw badArgument(`--normalization = ${JSON.stringify(flags.normalization)}: must be an integer from 0 to 3`);
      }
      normalization = Number(flags.normalization);
    }
    const params = resolveChunkerParams(
      { minSize: size('min-size'), avgSize: size('avg-size'), maxSize: size('max-size'), normalization },
      { names: { minSize: '--min-size', avgSize: '--avg-size', maxSize: '--max-size', normalization: '--normalization' } },
    );
    const engine = oneOf(flags.engine, ['native', 'wasm', 'auto'] as const, '--engine');
    const chunker = createChunker(params, { engine });

    const started = process.hrtime.bigint();
    const input = positionals[0]!;

    let offset = 0;
    let chunks = 0;
    let minLength = Infinity;
    let maxLength = 0;
    const emit = async (batch: ChunkBatch): Promise<void> => {
      const n = batch.lengths.length;
      if (flags.stats) {
        for (let i = 0; i < n; i++) {
          const length = batch.lengths[i]!;
          if (length < minLength) minLength = length;
          if (length > maxLength) maxLength = length;
          offset += length;
        }
        chunks += n;
        return;
      }
      const hex = toHex(batch.hashes);
      let text = '';
      for (let i = 0; i < n; i++) {
        const length = batch.lengths[i]!;
        text += `{"offset":${offset},"length":${length},"hash":"${hex.slice(64 * i, 64 * i + 64)}"}\n`;
        offset += length;
      }
      chunks += n;
      await writeOut(io.stdout, text);
    };

    if (input === '-') {
      for await (const slice of sliceStream(io.stdin, SLICE_BYTES)) await emit(await chunker.push(slice));
    } else {
      // A file is read into two reused buffers, the next slice while the engine chunks and
      // hashes the current one (both on libuv's threads): the command runs at the engine's
      // speed. Streaming it in 1 MiB pieces, each awaited before the next read, ran at a third.
      const file = await openInput(input);
      try {
        const buffers = [Buffer.allocUnsafeSlow(SLICE_BYTES), Buffer.allocUnsafeSlow(SLICE_BYTES)];
        const readInto = async (b: Buffer): Promise<number> => {
          let n = 0;
          while (n < b.length) {
            const { bytesRead } = await file.read(b, n, b.length - n, null);
            if (bytesRead === 0) break;
            n += bytesRead;
          }
          return n;
        };
        let k = 0;
        let n = await readInto(buffers[0]!);
        while (n > 0) {
          // The engine keeps what it needs of a slice (a chunk's unfinished tail) once the push resolves.
          const pushed = chunker.push(buffers[k]!.subarray(0, n));
          const next = n === SLICE_BYTES ? readInto(buffers[k ^ 1]!) : Promise.resolve(0);
          next.catch(() => {});
          await emit(await pushed);
          n = await next;
          k ^= 1;
        }
      } finally {
        await file.close();
      }
    }
    await emit(await chunker.finish());

    if (flags.stats) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const stats = {
        engine: chunker.engine,
        chunks,
        bytes: offset,
        minLength: chunks === 0 ? 0 : minLength,
        maxLength,
        avgLength: chunks === 0 ? 0 : Math.round((offset / chunks) * 100) / 100,
        seconds: Math.round(seconds * 1000) / 1000,
      };
      await writeOut(io.stdout, JSON.stringify(stats) + '\n');
    }
  },
});

/** Bytes per engine call: large enough that a call's fixed cost vanishes, small enough to overlap reads. */
const SLICE_BYTES = 8 << 20;

/** Opens a file for reading, turning the usual failures into clear errors. */
async function openInput(path: string): Promise<FileHandle> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new ChunkyardError('IO_ERROR', `cannot open ${JSON.stringify(path)}: ${why}`, { cause: err });
  }
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    throw badArgument(`${JSON.stringify(path)} is a directory; chunkyard chunks reads one file`);
  }
  return handle;
}
