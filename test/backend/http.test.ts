/**
 * HttpBackend: the shared conformance suite against a real daemon (src/daemon/server.ts, the
 * object API of src/daemon/object-routes.ts) over a real socket on 127.0.0.1, serving a
 * directory through FsBackend; both the bare backend and what openBackend gives
 * (RetryingBackend around it). Then what only this backend has: the location syntax, tokens
 * refused with stable codes, and a writer of many parts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pattern, runBackendConformance } from '../../src/backend/conformance.js';
import { openFsBackend } from '../../src/backend/fs.js';
import { HttpBackend, parseHttpStoreLocation } from '../../src/backend/http.js';
import { locationKind, openBackend } from '../../src/backend/location.js';
import { TokenTable, type TokenEntry } from '../../src/daemon/auth.js';
import { Daemon } from '../../src/daemon/server.js';
import { ChunkyardError } from '../../src/errors.js';

const TOKENS: TokenEntry[] = [
  { token: 'objects-writer-01', targets: [], access: 'write', scope: 'objects' },
  { token: 'objects-reader-01', targets: [], access: 'read', scope: 'objects' },
  { token: 'targets-writer-01', targets: ['*'], access: 'write' },
];

/** An objects-only daemon on a fresh directory. */
async function serveDir(): Promise<{ url: string; dir: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trust-http-'));
  const fs = await openFsBackend(dir);
  const log = new Writable({ write: (_c, _e, cb) => cb() });
  const daemon = new Daemon({ objects: fs, tokens: new TokenTable(TOKENS), log, processInterval: 0 });
  const addr = await daemon.listen('127.0.0.1', 0);
  return {
    url: `chunkyard+http://127.0.0.1:${addr.port}`,
    dir,
    stop: async () => {
      await daemon.shutdown(1);
      await fs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

runBackendConformance('HttpBackend (bare, over a daemon)', async () => {
  const d = await serveDir();
  return { backend: new HttpBackend(d.url, { token: 'objects-writer-01' }), cleanup: () => d.stop() };
});

runBackendConformance('HttpBackend (openBackend: with retries)', async () => {
  const d = await serveDir();
  return { backend: await openBackend(d.url, { token: 'objects-writer-01' }), cleanup: () => d.stop() };
});

describe('HttpBackend specifics', () => {
  test('locations: chunkyard+http(s) only; no credentials, query or fragment in them', () => {
    assert.equal(locationKind('chunkyard+http://127.0.0.1:8420'), 'http');
    assert.equal(locationKind('CHUNKYARD+HTTPS://backup.example'), 'http');
    assert.equal(parseHttpStoreLocation('chunkyard+https://h.example:8443/base/').href, 'https://h.example:8443/base');
    assert.equal(parseHttpStoreLocation('chunkyard+http://h.example').href, 'http://h.example/');
    for (const bad of ['chunkyard+http://user:secret@h:1', 'chunkyard+http://h:1/?x=1', 'chunkyard+http://h:1/#f', 'chunkyard+http://']) {
      assert.throws(() => parseHttpStoreLocation(bad), (e) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT', bad);
    }
    // Plain http:// is the snapshot API (push, pull): refused as a store, with a hint.
    assert.throws(() => locationKind('http://127.0.0.1:8420'), (e) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT' && /chunkyard\+http/.test(e.message));
  });

  test('tokens: none or unknown is UNAUTHORIZED, a targets token FORBIDDEN, a reader may not write', async () => {
    const d = await serveDir();
    try {
      for (const [token, code] of [[undefined, 'UNAUTHORIZED'], ['nobody-knows-me', 'UNAUTHORIZED'], ['targets-writer-01', 'FORBIDDEN']] as const) {
        const saved = process.env['CHUNKYARD_TOKEN'];
        delete process.env['CHUNKYARD_TOKEN'];
        try {
          await assert.rejects(openBackend(d.url, token === undefined ? {} : { token }), (e) => e instanceof ChunkyardError && e.code === code, String(token));
        } finally {
          if (saved !== undefined) process.env['CHUNKYARD_TOKEN'] = saved;
        }
      }
      const reader = new HttpBackend(d.url, { token: 'objects-reader-01' });
      await assert.rejects(reader.put('a', Buffer.from('x')), (e) => e instanceof ChunkyardError && e.code === 'FORBIDDEN');
      await assert.rejects(reader.delete('a'), (e) => e instanceof ChunkyardError && e.code === 'FORBIDDEN');
      await reader.close();
      assert.deepEqual(await readdir(d.dir), []);
    } finally {
      await d.stop();
    }
  });

  test('exclusive writers in parts, racing from separate clients: exactly one commit wins, no temporary file is left', async () => {
    const d = await serveDir();
    try {
      const clients = Array.from({ length: 4 }, () => new HttpBackend(d.url, { token: 'objects-writer-01', partBytes: 64 * 1024 }));
      const contents = clients.map((_, i) => pattern(300_000 + i * 1000, 70 + i));
      const writers = await Promise.all(clients.map((c) => c.openWriter('race/parts', { exclusive: true })));
      await Promise.all(writers.map((w, i) => w.write(contents[i]!)));
      const results = await Promise.allSettled(writers.map((w) => w.commit()));
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as ChunkyardError).code, 'OBJECT_EXISTS');
      assert.ok((await clients[0]!.get('race/parts')).equals(contents[winners[0]!]!));
      await Promise.all(clients.map((c) => c.close()));
      assert.deepEqual(await readdir(path.join(d.dir, 'tmp~')), []);
    } finally {
      await d.stop();
    }
  });

  test('a writer of many small parts streams in order, and an unreachable daemon is BACKEND_UNAVAILABLE', async () => {
    const d = await serveDir();
    try {
      const b = new HttpBackend(d.url, { token: 'objects-writer-01', partBytes: 64 * 1024, connections: 2 });
      const w = await b.openWriter('parts/x', { exclusive: true });
      const pieces = Array.from({ length: 50 }, (_, i) => pattern(10_000 + i * 31, i));
      for (const p of pieces) await w.write(p);
      await w.commit();
      assert.ok((await b.get('parts/x')).equals(Buffer.concat(pieces)));
      await b.close();
    } finally {
      await d.stop();
    }
    const gone = new HttpBackend(d.url, { token: 'objects-writer-01', retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    await assert.rejects(gone.stat('x'), (e) => e instanceof ChunkyardError && e.code === 'BACKEND_UNAVAILABLE');
    await gone.close();
  });
});
