/**
 * Writer sessions: how many writers share one store without a lock (docs/format.md,
 * "Sessions"; docs/operations.md, "Many writers").
 *
 * Every operation that may make a snapshot reference stored data — a backup, a `process`
 * pass, prune's and repair's own copying, a replication — first writes a small object
 * `sessions/<id>.json` and rewrites it every REFRESH_MS while it runs, then deletes it. Prune
 * never deletes what it condemned while a session that was live at the condemnation may still
 * commit (src/session/condemned.ts), so a writer can reference any pack it found without a
 * global lock.
 *
 * Times are the backend's: the `modified` time of the session object after each refresh, as
 * the backend reports it, never the local clock compared with another host's. A writer whose
 * refreshes were more than LAPSE_MS apart (a suspended process, a laptop asleep, a backend
 * that did not answer) has lapsed: prune may have taken it for dead (EXPIRE_MS), so it must
 * not commit on what it found before (SESSION_EXPIRED).
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.js';
import { ChunkyardError, hasCode } from '../errors.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { initBlake3 } from '../util/blake3.js';
import { currentIdentity, judgeProcess, type ProcessIdentity } from './liveness.js';

/** SAFETY CONSTANTS (docs/operations.md, "Many writers"): each says why it has its value. */
/**
 * How often a live session rewrites its object. Far below LAPSE_MS so that a busy event loop
 * or one slow backend request does not make a healthy writer lapse.
 */
export const REFRESH_MS = 20_000;
/**
 * A writer whose refreshes were further apart than this treats itself as lapsed and refuses
 * to commit. Below EXPIRE_MS by a wide margin (EXPIRE_MS − LAPSE_MS = 3.5 min), so that the
 * commit that follows a successful check finishes long before prune could judge the session
 * expired.
 */
export const LAPSE_MS = 90_000;
/**
 * Prune takes a session whose object was not refreshed for this long (backend time) as ended,
 * even from another host. A session of this host whose process is gone ends at once.
 */
export const EXPIRE_MS = 5 * 60_000;

/**
 * How recent the last write of a session object must be for a commit to rely on it instead of
 * writing it again (assertFresh); at most half of LAPSE_MS (the timing in force), so that no
 * lapse fits in it. A few seconds against the EXPIRE_MS − LAPSE_MS = 3.5 min a commit may take
 * after its check; measured on this host's clocks (durations, never compared with another host's).
 */
export const FRESH_CHECK_MS = 5_000;

export const SESSION_PREFIX = 'sessions/';
const SESSION_NAME = /^sessions\/([0-9a-f]{32})\.json$/;

export interface SessionRecord extends ProcessIdentity {
  version: 1;
  id: string;
  /** What the session does (a command line), for messages and `chunkyard sessions`. */
  command: string;
  /** Local time the session started (information only: never compared across hosts). */
  started: string;
}

/** A session as seen by maintenance: its record (if readable) and its last refresh. */
export interface SessionInfo {
  id: string;
  name: string;
  /** Backend time of the last refresh (ms), if the backend reports it. */
  modified: number | undefined;
  record: SessionRecord | undefined;
}

export interface SessionTiming {
  refreshMs: number;
  lapseMs: number;
  expireMs: number;
}

/**
 * The session timing in force: the constants, or (for tests that must see leases run out
 * in seconds) CHUNKYARD_SESSION_TIMING="refresh,lapse,expire" in ms.
 */
export function sessionTiming(): SessionTiming {
  const env = process.env['CHUNKYARD_SESSION_TIMING'];
  if (env) {
    const [refreshMs, lapseMs, expireMs] = env.split(',').map(Number);
    if ([refreshMs, lapseMs, expireMs].every((n) => Number.isFinite(n) && n! > 0) && refreshMs! < lapseMs! && lapseMs! < expireMs!) {
      return { refreshMs: refreshMs!, lapseMs: lapseMs!, expireMs: expireMs! };
    }
  }
  return { refreshMs: REFRESH_MS, lapseMs: LAPSE_MS, expireMs: EXPIRE_MS };
}

export function sessionObjectName(id: string): string {
  return `${SESSION_PREFIX}${id}.json`;
}

/** The backend's modified time of one object (undefined when missing or not reported). */
export async function backendTime(backend: Backend, name: string): Promise<number | undefined> {
  for await (const o of backend.list(name)) if (o.name === name) return o.modified;
  return undefined;
}

export class WriterSession {
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh: number | undefined;
  private lapsedReason: string | undefined;
  private ended = false;
  private refreshing: Promise<void> | undefined;
  /**
   * When the session object was last written by start() or a successful assertCurrent (the
   * time before the write began): the monotonic clock (immune to clock
   * steps) and the wall clock (which, unlike Linux's monotonic one, runs on while the host sleeps).
   */
  private checkedAt: { mono: number; wall: number } | undefined;
  readonly name: string;

  private constructor(
    private readonly backend: Backend,
    readonly record: SessionRecord,
    private readonly timing: SessionTiming,
  ) {
    this.name = sessionObjectName(record.id);
  }

  get id(): string {
    return this.record.id;
  }

  /**
   * Announces a new session in the store; refreshes it in the background until end(). A
   * reader (a restore: it never commits, so never asks whether it lapsed) skips reading the
   * backend's time of its first write: one request less per restore.
   */
  static async start(backend: Backend, command: string, options: { reader?: boolean } = {}): Promise<WriterSession> {
    await initBlake3(); // the record is sealed JSON
    const record: SessionRecord = { version: 1, id: randomBytes(16).toString('hex'), command, started: new Date().toISOString(), ...(await currentIdentity()) };
    const session = new WriterSession(backend, record, sessionTiming());
    const started = { mono: performance.now(), wall: Date.now() };
    // A reader's session dies with its machine, as the reader does: it need not be flushed.
    await backend.put(session.name, sealJson({ ...record }), { exclusive: true, volatile: options.reader === true });
    if (!options.reader) session.lastRefresh = await backendTime(backend, session.name);
    // Written just now: as good as a check for a commit within FRESH_CHECK_MS (assertFresh).
    session.checkedAt = started;
    session.timer = setInterval(() => {
      session.refresh().catch(() => {}); // a failed refresh shows as a gap at the next one
    }, session.timing.refreshMs);
    session.timer.unref();
    return session;
  }

  /** Rewrites the session object; notes a lapse when the previous refresh is too long ago. */
  async refresh(): Promise<void> {
    if (this.ended) return;
    this.refreshing ??= (async () => {
      try {
        // Gone: a maintenance run took this session for dead and removed it.
        if ((await this.backend.stat(this.name)) === undefined) {
          this.lapsedReason ??= 'its session object was removed by maintenance (taken for dead)';
        }
        await this.backend.put(this.name, sealJson({ ...this.record }));
        const now = await backendTime(this.backend, this.name);
        if (now !== undefined && this.lastRefresh !== undefined && now - this.lastRefresh > this.timing.lapseMs) {
          this.lapsedReason ??= `it was not refreshed for ${Math.round((now - this.lastRefresh) / 1000)} s (the limit is ${this.timing.lapseMs / 1000} s): the process was suspended or the store did not answer`;
        }
        if (now !== undefined) this.lastRefresh = now;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * Called right before a commit point (a manifest written or replaced): refreshes, and
   * throws SESSION_EXPIRED when the session lapsed at any time, so that a writer that may
   * have been taken for dead never commits on what it found before.
   */
  async assertCurrent(what: string): Promise<void> {
    const started = { mono: performance.now(), wall: Date.now() };
    await this.refresh();
    if (this.lapsedReason !== undefined) {
      throw new ChunkyardError('SESSION_EXPIRED', `${what} was not committed: the writer's session lapsed (${this.lapsedReason}), so data it reused may have been pruned meanwhile. Nothing was committed; run it again`);
    }
    this.checkedAt = started;
  }

  /**
   * assertCurrent, unless the session object was written (by start() or a successful
   * assertCurrent) less than FRESH_CHECK_MS ago and no refresh since noted a lapse: no lapse
   * can fit in that time, and prune cannot take the session for ended before EXPIRE_MS after
   * that write. A short backup commits without another write of its session object; a longer
   * one runs the check beside its last durable writes and commits right after it.
   */
  async assertFresh(what: string): Promise<void> {
    const at = this.checkedAt;
    if (this.lapsedReason === undefined && at !== undefined) {
      const mono = performance.now() - at.mono;
      const wall = Date.now() - at.wall;
      const window = Math.min(FRESH_CHECK_MS, this.timing.lapseMs / 2);
      if (mono < window && wall >= 0 && wall < window) return;
    }
    await this.assertCurrent(what);
  }

  /** Ends the session: stops refreshing and removes its object. Idempotent. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    await this.refreshing?.catch(() => {});
    await this.backend.delete(this.name);
  }
}

/** Every session object in the store, with its record when readable. */
export async function listSessions(backend: Backend): Promise<SessionInfo[]> {
  const out: SessionInfo[] = [];
  for await (const o of backend.list(SESSION_PREFIX)) {
    const m = SESSION_NAME.exec(o.name);
    if (!m) continue;
    let record: SessionRecord | undefined;
    try {
      record = openSealedJson(await backend.get(o.name), o.name) as unknown as SessionRecord;
    } catch (err) {
      if (hasCode(err, 'OBJECT_NOT_FOUND')) continue; // ended meanwhile
      record = undefined; // damaged: judged by its age alone
    }
    out.push({ id: m[1]!, name: o.name, modified: o.modified, record });
  }
  return out;
}

/**
 * Whether a session may still commit. `now` is a backend time (the modified time of an object
 * the caller just wrote). Ended: its object is gone, its process is known dead, or it was not
 * refreshed for expireMs. A session whose age the backend cannot tell is live until its
 * process is known dead.
 */
export async function sessionIsLive(s: SessionInfo | undefined, now: number | undefined, timing: SessionTiming = sessionTiming()): Promise<boolean> {
  if (!s) return false;
  if (s.record && (await judgeProcess(s.record)) === 'dead') return false;
  if (s.modified !== undefined && now !== undefined && now - s.modified > timing.expireMs) return false;
  return true;
}
