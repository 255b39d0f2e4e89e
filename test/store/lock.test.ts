/**
 * The store's single-writer lock: refusal while held (same process, live child), takeover
 * of a lock whose holder was killed with SIGKILL (exactly one of several racing processes),
 * pid reuse and reboots, other hosts, release only when still ours.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ChunkyardError } from '../../src/errors.js';
import { acquireWriterLock, LOCK_FILE, type LockInfo } from '../../src/store/lock.js';

const LOCK_MODULE = pathToFileURL(
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/store/lock.js'),
).href;
const onLinux = existsSync('/proc/self/stat') && existsSync('/proc/sys/kernel/random/boot_id');

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'chunkyard-lock-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What the lock file in `dir` says (undefined when there is none). */
async function readWriterLock(dir: string): Promise<LockInfo | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const { pid, hostname: host, startedAt, command } = JSON.parse(text);
  return { pid, hostname: host, startedAt, command };
}

function isLocked(err: unknown): boolean {
  return err instanceof ChunkyardError && err.code === 'STORE_LOCKED';
}

interface Child {
  pid: number;
  /** Lines printed so far. */
  lines: () => string[];
  kill: () => Promise<void>;
}

/** Starts a child that tries to take the lock, prints `acquired` or `locked <message>`, and stays alive. */
function lockingChild(dir: string, command: string, startAt = 0): Promise<Child> {
  const code = `
    const { acquireWriterLock } = await import(${JSON.stringify(LOCK_MODULE)});
    // Racers start together: wait for the agreed moment.
    await new Promise((r) => setTimeout(r, Math.max(0, ${startAt} - Date.now())));
    try {
      const lock = await acquireWriterLock(${JSON.stringify(dir)}, { command: ${JSON.stringify(command)} });
      console.log(lock.tookOverStale ? 'acquired stale' : 'acquired');
    } catch (err) {
      console.log(err.code === 'STORE_LOCKED' ? 'locked ' + err.message : 'error ' + err.message);
    }
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      const first = out === '';
      out += d;
      if (first && out.includes('\n')) {
        resolve({
          pid: child.pid!,
          lines: () => out.trim().split('\n'),
          kill: async () => {
            child.kill('SIGKILL');
            await exited;
          },
        });
      }
    });
    child.on('exit', (c) => {
      if (!out.includes('\n')) reject(new Error(`child exited (${c}) before reporting: ${err}`));
    });
  });
}

test('the lock file holds pid, hostname, startedAt and command', async () => {
  await withDir(async (dir) => {
    const lock = await acquireWriterLock(dir, { command: 'chunkyard backup /data' });
    assert.equal(lock.path, path.join(dir, LOCK_FILE));
    assert.equal(lock.tookOverStale, false);
    assert.equal(lock.previous, undefined);
    const json = JSON.parse(await readFile(lock.path, 'utf8'));
    assert.equal(json.pid, process.pid);
    assert.equal(json.hostname, hostname());
    assert.equal(json.command, 'chunkyard backup /data');
    assert.ok(Math.abs(Date.parse(json.startedAt) - Date.now()) < 60_000);
    assert.deepEqual(lock.info, {
      pid: json.pid,
      hostname: json.hostname,
      startedAt: json.startedAt,
      command: json.command,
    });
    assert.deepEqual(await readWriterLock(dir), lock.info);
    // Nothing else is left beside it.
    assert.deepEqual(await readdir(dir), [LOCK_FILE]);
    assert.equal(await lock.release(), true);
    assert.equal(await readWriterLock(dir), undefined);
  });
});

test('a second acquire in the same process fails with STORE_LOCKED', async () => {
  await withDir(async (dir) => {
    const lock = await acquireWriterLock(dir, { command: 'first' });
    await assert.rejects(acquireWriterLock(dir, { command: 'second' }), (err) => {
      assert.ok(isLocked(err));
      const message = (err as Error).message;
      assert.match(message, new RegExp(`pid ${process.pid}`));
      assert.match(message, new RegExp(hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.match(message, /first/);
      assert.match(message, new RegExp(lock.info.startedAt.replace(/[.]/g, '\\.')));
      return true;
    });
    // Concurrent attempts in this process: all refused, the lock unchanged.
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => acquireWriterLock(dir, { command: 'again' })),
    );
    for (const r of results) assert.ok(r.status === 'rejected' && isLocked(r.reason));
    assert.deepEqual(await readWriterLock(dir), lock.info);
    await lock.release();
  });
});

test('release then re-acquire works; release is idempotent', async () => {
  await withDir(async (dir) => {
    const first = await acquireWriterLock(dir, { command: 'one' });
    assert.equal(await first.release(), true);
    assert.equal(await first.release(), false);
    const second = await acquireWriterLock(dir, { command: 'two' });
    assert.equal(second.tookOverStale, false);
    assert.equal(await first.release(), false, 'an old handle does not remove the new lock');
    assert.deepEqual(await readWriterLock(dir), second.info);
    assert.equal(await second.release(), true);
    assert.deepEqual(await readdir(dir), []);
  });
});

test('release leaves a lock that is no longer ours', async () => {
  await withDir(async (dir) => {
    const lock = await acquireWriterLock(dir, { command: 'mine' });
    const other = {
      pid: 1,
      hostname: 'elsewhere.example',
      startedAt: new Date().toISOString(),
      command: 'someone else',
      token: randomBytes(16).toString('hex'),
    };
    await writeFile(lock.path, JSON.stringify(other));
    assert.equal(await lock.release(), false);
    assert.equal(JSON.parse(await readFile(lock.path, 'utf8')).command, 'someone else');
  });
});

test('a lock left by a SIGKILLed process is stale and taken over', { timeout: 30_000 }, async () => {
  await withDir(async (dir) => {
    const child = await lockingChild(dir, 'doomed backup');
    assert.deepEqual(child.lines(), ['acquired']);
    await assert.rejects(acquireWriterLock(dir, { command: 'too early' }), isLocked);
    await child.kill();
    const lock = await acquireWriterLock(dir, { command: 'after the crash' });
    assert.equal(lock.tookOverStale, true);
    assert.equal(lock.previous?.pid, child.pid);
    assert.equal(lock.previous?.command, 'doomed backup');
    assert.deepEqual(await readWriterLock(dir), lock.info);
    assert.deepEqual(await readdir(dir), [LOCK_FILE], 'no claim or temporary file left');
    assert.equal(await lock.release(), true);
  });
});

test('a live process’s lock refuses us, naming it', { timeout: 30_000 }, async () => {
  await withDir(async (dir) => {
    const child = await lockingChild(dir, 'nightly backup of /srv');
    try {
      assert.deepEqual(child.lines(), ['acquired']);
      await assert.rejects(acquireWriterLock(dir, { command: 'me' }), (err) => {
        assert.ok(isLocked(err));
        assert.match((err as Error).message, new RegExp(`pid ${child.pid} `));
        assert.match((err as Error).message, /nightly backup of \/srv/);
        return true;
      });
    } finally {
      await child.kill();
    }
  });
});

test('several processes racing for a stale lock: exactly one takes it over', { timeout: 60_000 }, async () => {
  await withDir(async (dir) => {
    const doomed = await lockingChild(dir, 'doomed');
    await doomed.kill();
    const startAt = Date.now() + 1500;
    const racers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => lockingChild(dir, `racer ${i}`, startAt)),
    );
    try {
      const outcomes = racers.map((r) => r.lines()[0]!);
      const winners = racers.filter((r) => r.lines()[0] === 'acquired stale');
      assert.equal(winners.length, 1, outcomes.join('\n'));
      for (const o of outcomes) assert.match(o, /^(acquired stale|locked )/);
      assert.equal((await readWriterLock(dir))?.pid, winners[0]!.pid);
      assert.deepEqual(await readdir(dir), [LOCK_FILE]);
    } finally {
      await Promise.all(racers.map((r) => r.kill()));
    }
  });
});

test('a lock from another host is never judged stale', async () => {
  await withDir(async (dir) => {
    const foreign = {
      pid: 999999,
      hostname: 'other-host.example',
      startedAt: '2024-01-02T03:04:05.000Z',
      command: 'chunkyard daemon',
      token: randomBytes(16).toString('hex'),
    };
    await writeFile(path.join(dir, LOCK_FILE), JSON.stringify(foreign));
    await assert.rejects(acquireWriterLock(dir, { command: 'me' }), (err) => {
      assert.ok(isLocked(err));
      const message = (err as Error).message;
      assert.match(message, /pid 999999 on host other-host\.example since 2024-01-02T03:04:05\.000Z/);
      assert.match(message, /chunkyard daemon/);
      assert.match(message, /remove .*lock by hand/);
      return true;
    });
  });
});

test('an unreadable lock file refuses us and says what to do', async () => {
  await withDir(async (dir) => {
    await writeFile(path.join(dir, LOCK_FILE), '');
    await assert.rejects(acquireWriterLock(dir, { command: 'me' }), (err) => {
      assert.ok(isLocked(err));
      assert.match((err as Error).message, /unreadable \(empty file\).*remove that file by hand/);
      return true;
    });
  });
});

test('a missing store directory is STORE_NOT_FOUND', async () => {
  await withDir(async (dir) => {
    await assert.rejects(acquireWriterLock(path.join(dir, 'missing'), { command: 'me' }), {
      code: 'STORE_NOT_FOUND',
    });
  });
});

test('pid reuse: a live pid that did not write the lock does not hold it (Linux)', { skip: !onLinux }, async () => {
  await withDir(async (dir) => {
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    const base = {
      pid: process.pid, // alive (it is us), but this process did not write the lock
      hostname: hostname(),
      startedAt: '2024-01-02T03:04:05.000Z',
      command: 'previous incarnation',
      token: randomBytes(16).toString('hex'),
    };
    // Same boot, another start time: a restarted container whose writer had our pid.
    await writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ ...base, bootId, startTicks: 1 }));
    const lock = await acquireWriterLock(dir, { command: 'me' });
    assert.equal(lock.tookOverStale, true);
    assert.equal(lock.previous?.command, 'previous incarnation');
    await lock.release();

    // Written before a reboot.
    await writeFile(
      path.join(dir, LOCK_FILE),
      JSON.stringify({ ...base, bootId: '00000000-0000-0000-0000-000000000000', startTicks: 1 }),
    );
    const again = await acquireWriterLock(dir, { command: 'me' });
    assert.equal(again.tookOverStale, true);
    await again.release();

    // No start time recorded (another OS wrote it): a live pid is trusted.
    await writeFile(path.join(dir, LOCK_FILE), JSON.stringify(base));
    await assert.rejects(acquireWriterLock(dir, { command: 'me' }), isLocked);
  });
});
