/**
 * FsBackend: the shared conformance suite, plus what only a filesystem has: files under
 * their final names only after commit, no temporary files left behind, a writer killed with
 * SIGKILL before commit, exclusive puts racing across processes, stale temp clean-up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runBackendConformance } from '../../src/backend/conformance.js';
import { FsBackend, openFsBackend, TMP_FOLDER } from '../../src/backend/fs.js';
import { ChunkyardError } from '../../src/errors.js';

const FS_MODULE = pathToFileURL(
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/backend/fs.js'),
).href;
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

async function tempRoot(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'chunkyard-fs-'));
}

runBackendConformance('FsBackend', async () => {
  const root = await tempRoot();
  return { backend: new FsBackend(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

/** Files (relative paths) under `dir`, recursively, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

async function listNames(b: FsBackend, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for await (const o of b.list(prefix)) names.push(o.name);
  return names.sort();
}

/** Runs a Node ES module snippet; resolves with the child once it printed `ready`. */
function spawnChild(code: string): Promise<{ pid: number; kill: () => Promise<void>; output: () => string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) {
        resolve({
          pid: child.pid!,
          kill: async () => {
            child.kill('SIGKILL');
            await exited;
          },
          output: () => out,
        });
      }
    });
    child.on('exit', (codeOrNull) => {
      if (!out.includes('ready\n')) reject(new Error(`child exited (${codeOrNull}) before ready: ${err}`));
    });
  });
}

/** Runs a snippet to completion; resolves with its stdout. */
function runChild(code: string): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) =>
    child.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`child failed (${c}): ${err}`)))),
  );
}

describe('FsBackend on disk', () => {
  test('a writer: the temporary file is in tmp~/, the final name appears only at commit', async () => {
    const root = await tempRoot();
    try {
      const b = new FsBackend(root);
      const w = await b.openWriter('packs/00/obj.pack');
      await w.write(Buffer.alloc(3 * 1024 * 1024 + 5, 1));
      assert.equal(await exists(path.join(root, 'packs/00/obj.pack')), false);
      const pending = await filesUnder(root);
      assert.equal(pending.length, 1);
      assert.match(pending[0]!, new RegExp(`^${TMP_FOLDER}/${process.pid}\\.[0-9a-f]{8}\\.[0-9a-f]{16}~$`));
      assert.deepEqual(await listNames(b), []);
      await w.commit();
      assert.deepEqual(await filesUnder(root), ['packs/00/obj.pack']);
      assert.equal((await stat(path.join(root, 'packs/00/obj.pack'))).size, 3 * 1024 * 1024 + 5);
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('abort, failed exclusive puts and failed commits leave no temporary file', async () => {
    const root = await tempRoot();
    try {
      const b = new FsBackend(root);
      const w = await b.openWriter('a');
      await w.write(Buffer.from('data'));
      await w.abort();
      assert.deepEqual(await filesUnder(root), []);

      await b.put('x', Buffer.from('one'), { exclusive: true });
      await assert.rejects(b.put('x', Buffer.from('two'), { exclusive: true }), { code: 'OBJECT_EXISTS' });
      const w2 = await b.openWriter('y', { exclusive: true });
      await w2.write(Buffer.from('late'));
      await b.put('y', Buffer.from('first'));
      await assert.rejects(w2.commit(), { code: 'OBJECT_EXISTS' });
      await b.put('z', Buffer.from('replace me'));
      await b.put('z', Buffer.from('replaced'));
      assert.deepEqual(await filesUnder(root), ['x', 'y', 'z']);
      assert.equal(await readFile(path.join(root, 'z'), 'utf8'), 'replaced');
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('objects called tmp or tmp/… never meet the temporary files', async () => {
    const root = await tempRoot();
    try {
      const b = new FsBackend(root);
      await b.put('tmp/x', Buffer.from('object'));
      const w = await b.openWriter('tmp/y');
      await w.write(Buffer.from('pending'));
      assert.deepEqual(await listNames(b), ['tmp/x']);
      assert.deepEqual(await listNames(b, 'tmp'), ['tmp/x']);
      assert.equal(await b.removeStaleTemp(0), 0, 'a live writer’s file is kept');
      await w.commit();
      assert.deepEqual(await listNames(b), ['tmp/x', 'tmp/y']);
      await b.delete('tmp/x');
      await b.delete('tmp/y');
      // The name "tmp" itself is an ordinary object; writers keep working beside it.
      await b.put('tmp', Buffer.from('plain object'));
      await b.put('after', Buffer.from('still writable'));
      const w2 = await b.openWriter('after2');
      await w2.write(Buffer.from('x'));
      await w2.commit();
      assert.deepEqual(await listNames(b), ['after', 'after2', 'tmp']);
      assert.deepEqual(await filesUnder(root), ['after', 'after2', 'tmp']);
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('files that are not objects are not listed', async () => {
    const root = await tempRoot();
    try {
      const b = new FsBackend(root);
      await b.put('packs/a', Buffer.from('a'));
      await writeFile(path.join(root, 'lock~123.abc'), 'x');
      await writeFile(path.join(root, 'packs', 'junk file'), 'x');
      await writeFile(path.join(root, 'packs', 'b~'), 'x');
      await mkdir(path.join(root, 'empty', 'folders'), { recursive: true });
      assert.deepEqual(await listNames(b), ['packs/a']);
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a writer killed with SIGKILL before commit leaves no object; its temp file is cleaned up later', async () => {
    const root = await tempRoot();
    try {
      const child = await spawnChild(`
        const { FsBackend } = await import(${JSON.stringify(FS_MODULE)});
        const b = new FsBackend(${JSON.stringify(root)});
        await b.put('before', Buffer.from('committed'));
        const w = await b.openWriter('victim');
        for (let i = 0; i < 5; i++) await w.write(Buffer.alloc(700 * 1024, i));
        process.stdout.write('ready\\n');
        setInterval(() => {}, 1000);
      `);
      await child.kill();
      const b = await openFsBackend(root); // the one-day rule keeps the fresh temp file
      assert.equal(await b.stat('victim'), undefined);
      await assert.rejects(b.get('victim'), { code: 'OBJECT_NOT_FOUND' });
      assert.deepEqual(await listNames(b), ['before']);
      const leftovers = (await filesUnder(root)).filter((f) => f.startsWith(`${TMP_FOLDER}/`));
      assert.equal(leftovers.length, 1);
      assert.ok(leftovers[0]!.startsWith(`${TMP_FOLDER}/${child.pid}.`));

      // A temp file of another host, same dead pid: never judged from here.
      const foreign = path.join(root, TMP_FOLDER, `${child.pid}.00000000.0123456789abcdef~`);
      await writeFile(foreign, 'x');
      // A temp file of this process, made now: kept (it could be a live writer's).
      const own = path.join(root, TMP_FOLDER, `${process.pid}.${HOST_TAG}.0123456789abcdef~`);
      await writeFile(own, 'x');
      assert.equal(await b.removeStaleTemp(), 0, 'younger than a day');
      assert.equal(await b.removeStaleTemp(0), 1, 'the dead writer’s file');
      assert.equal(await exists(path.join(root, leftovers[0]!)), false);
      assert.equal(await exists(foreign), true);
      assert.equal(await exists(own), true);
      // Our own pid, but older than this process: a previous incarnation's.
      const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
      await utimes(own, old, old);
      await utimes(foreign, old, old);
      assert.equal(await b.removeStaleTemp(), 1);
      assert.equal(await exists(own), false);
      assert.equal(await exists(foreign), true);
      await b.close();

      // openFsBackend runs the clean-up with the one-day rule.
      const dead = path.join(root, TMP_FOLDER, `${child.pid}.${HOST_TAG}.fedcba9876543210~`);
      await writeFile(dead, 'x');
      await utimes(dead, old, old);
      await (await openFsBackend(root)).close();
      assert.equal(await exists(dead), false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('exclusive puts racing from several processes: exactly one wins', { timeout: 60_000 }, async () => {
    const root = await tempRoot();
    try {
      const contenders = 6;
      const outputs = await Promise.all(
        Array.from({ length: contenders }, (_, i) =>
          runChild(`
            const { FsBackend } = await import(${JSON.stringify(FS_MODULE)});
            const b = new FsBackend(${JSON.stringify(root)});
            const data = Buffer.alloc(${200_000 + i}, ${i});
            // Start together: wait for the next 300 ms boundary.
            await new Promise((r) => setTimeout(r, 300 - (Date.now() % 300)));
            try {
              await b.put('race/obj', data, { exclusive: true });
              console.log('won ${i}');
            } catch (err) {
              console.log(err.code === 'OBJECT_EXISTS' ? 'lost' : 'error ' + err.message);
            }
          `),
        ),
      );
      const won = outputs.filter((o) => o.startsWith('won'));
      assert.equal(won.length, 1, outputs.join(''));
      assert.equal(outputs.filter((o) => o.startsWith('lost')).length, contenders - 1, outputs.join(''));
      const winner = Number(/won (\d+)/.exec(won[0]!)![1]);
      const b = new FsBackend(root);
      assert.equal(await b.stat('race/obj'), 200_000 + winner);
      assert.deepEqual(await filesUnder(root), ['race/obj']);
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('openFsBackend: STORE_NOT_FOUND for a missing root unless create; BAD_ARGUMENT for a file', async () => {
    const root = await tempRoot();
    try {
      const missing = path.join(root, 'not', 'there');
      await assert.rejects(openFsBackend(missing), (e) => e instanceof ChunkyardError && e.code === 'STORE_NOT_FOUND');
      assert.equal(await exists(missing), false);
      const created = await openFsBackend(missing, { create: true });
      assert.equal(created.location, missing);
      await created.put('a', Buffer.from('x'));
      await created.close();
      await writeFile(path.join(root, 'file'), 'x');
      await assert.rejects(openFsBackend(path.join(root, 'file')), { code: 'BAD_ARGUMENT' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a replaced object keeps serving its old content to a stream already open', async () => {
    const root = await tempRoot();
    try {
      const b = new FsBackend(root);
      const old = Buffer.alloc(4 * 1024 * 1024, 0xaa);
      await b.put('doc', old);
      const stream = b.getStream('doc');
      const chunks: Buffer[] = [];
      let replaced = false;
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        if (!replaced) {
          replaced = true;
          await b.put('doc', Buffer.alloc(100, 0xbb));
        }
      }
      assert.ok(Buffer.concat(chunks).equals(old));
      assert.ok((await b.get('doc')).equals(Buffer.alloc(100, 0xbb)));
      await b.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
