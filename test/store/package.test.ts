/**
 * What `npm pack` ships: the LICENSE, and every file the README links to (a reader of the
 * package on disk or on the registry's page follows them). Also: every result and option type
 * of the public API is exported from the package entry (this file does not compile otherwise).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type {
  BackupCallOptions,
  BackupResult,
  CheckOptions,
  CheckReport,
  ForgetOptions,
  ForgetReport,
  InitOptions,
  OpenOptions,
  ProcessOptions,
  ProcessResult,
  PruneOptions,
  PruneReport,
  RepairOptions,
  RepairReport,
  RestoreOptions,
  RestoreToOptions,
  SnapshotFilter,
  SnapshotInfo,
  StoreStats,
  RetentionPolicy,
} from '../../src/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('the result types are one family: a backup resolves to the snapshot object', () => {
  const info: SnapshotInfo = { id: '0'.repeat(16), target: 't', time: '', host: null, tags: [], metadata: {}, policy: 'immediate', consistency: 'crash', staged: false, logicalBytes: 0, chunks: 0, newChunks: 0, newBytes: 0, storedBytes: 0, seconds: 0 };
  const result: BackupResult = info;
  const back: SnapshotInfo = result;
  assert.equal(back, info);
  // Reports and options are nameable (compile-time): a list of them, so none is unused.
  type Named = [BackupCallOptions, CheckOptions, CheckReport, ForgetOptions, ForgetReport, InitOptions, OpenOptions, ProcessOptions, ProcessResult, PruneOptions, PruneReport, RepairOptions, RepairReport, RestoreOptions, RestoreToOptions, SnapshotFilter, StoreStats, RetentionPolicy];
  const count: Named['length'] = 18;
  assert.equal(count, 18);
});

test('npm pack ships the LICENSE (MIT) and every file the README links to', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
  assert.ok(files.has('LICENSE'));
  assert.match(readFileSync(`${ROOT}/LICENSE`, 'utf8'), /^MIT License/);
  assert.equal((JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { license: string }).license, 'MIT');
  const readme = readFileSync(`${ROOT}/README.md`, 'utf8');
  const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
  assert.ok(links.length >= 10, `the README links its documents (${links.length} links)`);
  for (const link of links) assert.ok(files.has(link.replace(/^\.\//, '')), `README links ${link}, which the package lacks`);
});
