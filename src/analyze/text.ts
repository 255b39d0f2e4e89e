/** The readable (non-JSON) output of `chunkyard analyze`: a results table and new bytes per generation. */
import { humanBytes } from '../util/format.js';
import type { AnalyzeReport } from './analyze.js';

/** A size in the binary units the options take: "64 KiB", "1 MiB", "300 B". */
export function shortSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return bytes >= 1024 ? humanBytes(bytes) : `${bytes} B`;
}

function table(header: string[], rows: string[][], rightAligned: (i: number) => boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (rightAligned(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatReport(report: AnalyzeReport): string {
  const n = report.files.length;
  const out: string[] = [];
  out.push(
    `${n} generation${n === 1 ? '' : 's'}, ${humanBytes(report.logicalBytes)} read in ${report.seconds.toFixed(2)} s ` +
      `(${humanBytes(report.seconds > 0 ? report.logicalBytes / report.seconds : 0)}/s), compression ${report.compression}${report.zstdLevel !== undefined ? ` (level ${report.zstdLevel})` : ''}, engine ${report.engine}\n\n`,
  );
  out.push(
    table(
      ['avg size', 'min..max', 'chunks', 'unique', 'logical', 'unique bytes', 'dedupe', 'compressed', 'reduction', 'mean', 'median', 'spills'],
      report.results.map((r) => [
        shortSize(r.avgSize),
        `${shortSize(r.minSize)}..${shortSize(r.maxSize)}`,
        String(r.chunks),
        String(r.uniqueChunks),
        humanBytes(r.logicalBytes),
        humanBytes(r.uniqueBytes),
        `${r.dedupeRatio.toFixed(2)}x`,
        humanBytes(r.compressedBytes),
        `${r.reductionRatio.toFixed(2)}x`,
        humanBytes(r.chunkSize.mean),
        humanBytes(r.chunkSize.median),
        String(r.spills),
      ]),
      (i) => i >= 2,
    ),
  );
  out.push('\nwhat each size costs besides the data (metadata on disk, writer RAM, chunking speed)\n');
  out.push(
    table(
      ['avg size', 'recipes', 'pack tables', 'index', 'metadata', 'data+metadata', 'RAM/chunk', 'filter RAM', 'chunk+hash'],
      report.results.map((r) => [
        shortSize(r.avgSize),
        humanBytes(r.costs.recipeBytes),
        humanBytes(r.costs.packTableBytes),
        humanBytes(r.costs.indexBytes),
        humanBytes(r.costs.metadataBytes),
        humanBytes(r.costs.footprintBytes),
        `${r.costs.ramBytesPerStoredChunk.toFixed(1)} B`,
        humanBytes(r.costs.filterBytes),
        r.costs.chunkingBytesPerSecond === null ? '-' : `${humanBytes(r.costs.chunkingBytesPerSecond)}/s`,
      ]),
      (i) => i >= 1,
    ),
  );
  const smallest = report.results.reduce((a, b) => (b.costs.footprintBytes < a.costs.footprintBytes ? b : a), report.results[0]!);
  if (smallest) {
    out.push(
      `smallest store (data + metadata): avg ${shortSize(smallest.avgSize)}, ${humanBytes(smallest.costs.footprintBytes)}. ` +
        'Smaller chunks dedupe better but cost more metadata, RAM and time per byte; the growth per generation below is what each new backup adds.\n',
    );
  }
  out.push('\nnew bytes per generation (compressed in brackets)\n');
  out.push(
    table(
      ['#', 'file', 'size', ...report.results.map((r) => `avg ${shortSize(r.avgSize)}`)],
      report.files.map((file, g) => [
        String(g + 1),
        file,
        humanBytes(report.results[0]?.generations[g]?.logicalBytes ?? 0),
        ...report.results.map((r) => {
          const gen = r.generations[g]!;
          return `${humanBytes(gen.newBytes)} (${humanBytes(gen.newCompressedBytes)})`;
        }),
      ]),
      (i) => i !== 1,
    ),
  );
  if (report.results.some((r) => r.delta)) {
    out.push('\nwith delta compression (--delta): stored bytes of the chunks, and what delta saves\n');
    out.push(
      table(
        ['avg size', 'delta chunks', 'their compressed', 'as deltas', 'saved', 'delta metadata', 'compressed with delta', 'reduction'],
        report.results.flatMap((r) =>
          r.delta
            ? [[`avg ${shortSize(r.avgSize)}`, String(r.delta.deltaChunks), humanBytes(r.delta.deltaCompressedBytes), humanBytes(r.delta.deltaStoredBytes), humanBytes(r.delta.savedBytes), humanBytes(r.delta.metadataBytes), humanBytes(r.delta.compressedBytes), `${r.delta.reductionRatio.toFixed(2)}x`]]
            : [],
        ),
        (i) => i !== 0,
      ),
    );
    out.push('\nnew compressed bytes per generation with delta (saved in brackets)\n');
    out.push(
      table(
        ['#', 'file', ...report.results.filter((r) => r.delta).map((r) => `avg ${shortSize(r.avgSize)}`)],
        report.files.map((file, g) => [
          String(g + 1),
          file,
          ...report.results.filter((r) => r.delta).map((r) => {
            const d = r.delta!.generations[g]!;
            return `${humanBytes(r.generations[g]!.newCompressedBytes - d.savedBytes)} (${humanBytes(d.savedBytes)})`;
          }),
        ]),
        (i) => i !== 1,
      ),
    );
  }
  return out.join('');
}
