/**
 * `chunkyard analyze <file|dir ...>`: a dry run that writes no store. Each file (each file
 * under a directory, in natural order) is one backup generation of the same source; prints,
 * per average chunk size, what a store would keep (docs/analyze.md).
 */
import { access, constants, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { parseSize } from '../../chunking/params.js';
import { COMPRESSIONS } from '../../store/config.js';
import { analyze, DEFAULT_ANALYZE_MEMORY, parseAvgSizes } from '../../analyze/analyze.js';
import { renderAnalyzeHtml } from '../../analyze/html.js';
import { formatReport, shortSize } from '../../analyze/text.js';
import { ChunkyardError, badArgument } from '../../errors.js';
import { printJson, zstdLevelFlag } from '../store-args.js';
import { ZSTD_LEVEL } from '../../pack/codecs.js';
import { humanBytes, progressLine, rate } from '../progress.js';
import { writeOut } from '../io.js';

const usage = '<file|dir ...> [--avg-size 8KiB,16KiB,64KiB] [--compression lz4|zstd|none [--zstd-level 1..19]] [--memory N] [--delta] [--json] [--html FILE]';

export default defineCommand({
  name: 'analyze',
  summary: 'dry run: dedupe and reduction ratios per average chunk size, without a store',
  usage,
  description: [
    'Each file, or each file under a directory (recursively, natural order, hidden names skipped),',
    'is one backup generation of the same source. For each average size (min = avg/4, max = avg*4,',
    'as for init) it reports chunks, logical and unique bytes (what a store with those parameters',
    'keeps before compression), the compressed size of the unique chunks, the ratios, the chunk-size',
    'distribution and the new bytes of each generation. The files are read once for all sizes.',
  ].join('\n'),
  flags: {
    'avg-size': { type: 'string', value: 'LIST', description: 'average chunk sizes, comma-separated powers of two (default 64KiB)' },
    compression: { type: 'string', value: 'lz4|zstd|none', description: 'codec a store would use for new chunks (default lz4)' },
    'zstd-level': { type: 'string', value: '1..19', description: `with --compression zstd: the level a store would use (init --zstd-level; default ${ZSTD_LEVEL})` },
    memory: { type: 'string', value: 'N', description: `memory for the fingerprint sets, all sizes together; beyond it they spill to disk (default ${shortSize(DEFAULT_ANALYZE_MEMORY)})` },
    engine: { type: 'string', value: 'native|wasm|auto', description: 'chunking engine (default auto)' },
    delta: { type: 'boolean', description: 'also estimate what delta compression (init --delta on) would save: a second pass per size' },
    json: { type: 'boolean', description: 'print one JSON object' },
    html: { type: 'string', value: 'FILE', description: 'also write a self-contained HTML report with plots to FILE' },
  },
  async run({ flags, positionals }, io) {
    if (positionals.length === 0) throw badArgument(`no input: give one or more files or directories (usage: chunkyard analyze ${usage})`);
    const avgSizes = flags['avg-size'] === undefined ? undefined : parseAvgSizes(flags['avg-size'], '--avg-size');
    const compression = oneOf(flags.compression, COMPRESSIONS, '--compression');
    const memoryBytes = flags.memory === undefined ? undefined : parseSize(flags.memory, '--memory');
    const engine = oneOf(flags.engine, ['native', 'wasm', 'auto'] as const, '--engine');
    if (flags.html !== undefined) await checkWritableDir(flags.html);

    const bar = progressLine(io.stderr);
    const t0 = Date.now();
    let report;
    try {
      report = await analyze(positionals, {
        avgSizes,
        compression,
        zstdLevel: flags['zstd-level'] === undefined ? undefined : zstdLevelFlag(flags['zstd-level']),
        memoryBytes,
        engine,
        delta: flags.delta === true,
        onProgress: (p) => {
          const s = (Date.now() - t0) / 1000;
          bar.update(`${humanBytes(p.bytes)} of ${humanBytes(p.totalBytes)}  ${rate(p.bytes, s)}  generation ${p.generation + 1}: ${p.file}`);
        },
      });
    } finally {
      bar.done();
    }
    if (flags.html !== undefined) {
      try {
        await writeFile(flags.html, renderAnalyzeHtml(report));
      } catch (err) {
        throw new ChunkyardError('IO_ERROR', `cannot write ${flags.html}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (flags.json) return printJson(io.stdout, report);
    await writeOut(io.stdout, formatReport(report));
    if (flags.html !== undefined) await writeOut(io.stderr, `wrote ${flags.html}\n`);
  },
});

/** Fails before the analysis, not after it, when the report cannot be written. */
async function checkWritableDir(file: string): Promise<void> {
  if (file === '') throw badArgument('--html needs a file name');
  const dir = dirname(file);
  try {
    if (!(await stat(dir)).isDirectory()) throw badArgument(`--html ${file}: ${dir} is not a directory`);
    await access(dir, constants.W_OK);
  } catch (err) {
    if (err instanceof ChunkyardError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw badArgument(`--html ${file}: directory ${dir} does not exist`);
    throw new ChunkyardError('IO_ERROR', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
  if ((await stat(file).catch(() => undefined))?.isDirectory()) throw badArgument(`--html ${file} is a directory`);
}
