/**
 * Two-phase deletion (docs/operations.md, "Many writers"), and the lease that keeps two
 * maintenance runs (prune, repair) from working on one store at once.
 *
 * Phase 1, condemn: prune writes `condemned/<id>.json` naming objects no snapshot references
 * (packs with their table objects, recipes, staging objects), then lists the live sessions
 * and writes the record again with their ids. Nothing is deleted.
 * Phase 2, delete: a later run deletes a condemned object only when every session named in
 * its record has ended AND a fresh mark, taken after that, still finds it unreferenced.
 *
 * Why that is safe without a writer lock: a writer announces its session before it looks
 * anything up, and reads the condemnation records after that. Either its session was
 * announced before prune listed the sessions (it is named in the record: its snapshot will be
 * seen by the fresh mark, which runs only after it ended), or it was announced after the
 * record was first written, and then it read the record and never reuses what it condemns.
 * A record without its session list (prune died between the two writes) protects nothing
 * and is dropped by the next run.
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.js';
import { ChunkyardError, hasCode } from '../errors.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { packIdFromName } from '../util/ids.js';
import { backendTime, listSessions, sessionIsLive, type SessionInfo, type WriterSession } from './session.js';

export const CONDEMNED_PREFIX = 'condemned/';
const RECORD_NAME = /^condemned\/([0-9a-f]{16})\.json$/;

export interface CondemnedRecord {
  version: 1;
  id: string;
  /** Local time of condemnation (information only). */
  created: string;
  /** Object names condemned (packs/…, tables/…, recipes/…, staging/…). */
  objects: string[];
  /** Sessions live when the record was first written; null until prune has listed them. */
  sessions: string[] | null;
}

export interface LoadedRecord {
  name: string;
  record: CondemnedRecord;
  /** Backend time the record was last written. */
  modified: number | undefined;
}

export function condemnedRecordName(id: string): string {
  return `${CONDEMNED_PREFIX}${id}.json`;
}

/** Every readable condemnation record; damaged ones are returned in `damaged` by name. */
export async function readCondemned(backend: Backend): Promise<{ records: LoadedRecord[]; damaged: string[] }> {
  const records: LoadedRecord[] = [];
  const damaged: string[] = [];
  for await (const o of backend.list(CONDEMNED_PREFIX)) {
    if (!RECORD_NAME.test(o.name)) continue;
    try {
      const body = openSealedJson(await backend.get(o.name), o.name) as unknown as CondemnedRecord;
      // Every field a reader uses, checked: a record that verifies but names objects with anything
      // but strings cannot say what it condemns either.
      const names = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
      if (body.version !== 1 || !names(body.objects) || !(body.sessions === null || names(body.sessions))) throw new ChunkyardError('CORRUPT', `${o.name}: not a condemnation record`);
      records.push({ name: o.name, record: body, modified: o.modified });
    } catch (err) {
      if (hasCode(err, 'OBJECT_NOT_FOUND')) continue;
      damaged.push(o.name);
    }
  }
  return { records, damaged };
}

/**
 * Pack ids (hex) that the records condemn: a writer never reuses a chunk stored only there.
 * A damaged record cannot say what it condemns: CORRUPT, and the store needs repair.
 */
export function packsCondemnedBy({ records, damaged }: { records: LoadedRecord[]; damaged: string[] }): Set<string> {
  if (damaged.length > 0) {
    throw new ChunkyardError('CORRUPT', `condemnation record ${damaged[0]} is damaged, so writers cannot tell which packs prune is about to delete; run chunkyard repair (it removes damaged records; the next prune condemns again)`);
  }
  const out = new Set<string>();
  for (const r of records) {
    for (const name of r.record.objects) {
      const id = packIdFromName(name);
      if (id) out.add(id.toString('hex'));
    }
  }
  return out;
}

/**
 * Phase 1: writes a record naming `objects`, then lists the live sessions and completes it.
 * The session doing the condemning is left out (it commits nothing that needs them).
 */
export async function condemn(backend: Backend, objects: string[], self: WriterSession): Promise<LoadedRecord | undefined> {
  if (objects.length === 0) return undefined;
  const id = randomBytes(8).toString('hex');
  const name = condemnedRecordName(id);
  const record: CondemnedRecord = { version: 1, id, created: new Date().toISOString(), objects, sessions: null };
  await backend.put(name, sealJson({ ...record }), { exclusive: true });
  // Listed only now: a session announced after this listing reads the record above. Sessions
  // that have ended already (a killed writer's object, judged on the backend's clock or by
  // its dead process) can commit nothing: they are not waited for.
  const now = await backendTime(backend, name);
  const sessions: string[] = [];
  for (const s of await listSessions(backend)) if (s.id !== self.id && (await sessionIsLive(s, now))) sessions.push(s.id);
  record.sessions = sessions;
  await backend.put(name, sealJson({ ...record }));
  return { name, record, modified: await backendTime(backend, name) };
}

/**
 * Whether every session a record names has ended, judged at backend time `now` against one
 * listing of the sessions (`sessions`, by id).
 * A record that never got its session list protects nothing: it is obsolete.
 */
export async function sessionsEnded(record: CondemnedRecord, sessions: ReadonlyMap<string, SessionInfo>, now: number | undefined): Promise<boolean> {
  // A record without its session list cannot say who may still use what it names.
  if (record.sessions === null) return false;
  for (const id of record.sessions) {
    if (await sessionIsLive(sessions.get(id), now)) return false;
  }
  return true;
}

// --- The maintenance lease ---------------------------------------------------------------

export const MAINTENANCE_LEASE = 'locks/maintenance.json';

interface LeaseRecord {
  version: 1;
  session: string;
  command: string;
  hostname: string;
  pid: number;
}

export interface MaintenanceLease {
  release(): Promise<void>;
}

/**
 * Takes the maintenance lease: one prune or repair at a time per store (they rewrite
 * manifests and delete objects; two at once could undo each other's work). Writers never
 * take it. The lease names the holder's session, so it is stale exactly when that session
 * has ended; a stale lease is taken over through a create-only claim named after it, so that
 * of several racing takers exactly one wins.
 */
export async function takeMaintenanceLease(backend: Backend, session: WriterSession, command: string): Promise<MaintenanceLease> {
  const body: LeaseRecord = { version: 1, session: session.id, command, hostname: session.record.hostname, pid: session.record.pid };
  const bytes = sealJson({ ...body });
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await backend.put(MAINTENANCE_LEASE, bytes, { exclusive: true });
      await sweepClaims(backend, session);
      return lease(backend, session.id);
    } catch (err) {
      if (!hasCode(err, 'OBJECT_EXISTS')) throw err;
    }
    let holder: LeaseRecord | undefined;
    try {
      holder = openSealedJson(await backend.get(MAINTENANCE_LEASE), MAINTENANCE_LEASE) as unknown as LeaseRecord;
    } catch (err) {
      if (hasCode(err, 'OBJECT_NOT_FOUND')) continue; // released meanwhile: try again
      holder = undefined; // damaged: judged by its holder's session, which we cannot name
    }
    const sessions = new Map((await listSessions(backend)).map((s) => [s.id, s]));
    const now = await backendTime(backend, session.name);
    if (holder && (await sessionIsLive(sessions.get(holder.session), now))) {
      throw new ChunkyardError('STORE_LOCKED', `another maintenance run holds the store: ${holder.command} (pid ${holder.pid} on ${holder.hostname}); prune and repair run one at a time (backups are not affected). Wait for it to finish`);
    }
    const claim = `locks/maintenance.takeover.${holder ? holder.session : 'damaged'}`;
    try {
      await backend.put(claim, bytes, { exclusive: true });
    } catch (err) {
      if (!hasCode(err, 'OBJECT_EXISTS')) throw err;
      // A claim left by a taker that died: removed once its session has ended, then retried.
      let claimer: LeaseRecord | undefined;
      try {
        claimer = openSealedJson(await backend.get(claim), claim) as unknown as LeaseRecord;
      } catch {
        claimer = undefined;
      }
      if (claimer && (await sessionIsLive(sessions.get(claimer.session), now))) {
        throw new ChunkyardError('STORE_LOCKED', `another maintenance run (${claimer.command}, pid ${claimer.pid} on ${claimer.hostname}) is taking over the stale maintenance lease; try again in a moment`);
      }
      await backend.delete(claim);
      continue;
    }
    // Under the claim, the lease must still be the one judged stale: another taker may have
    // replaced it since it was read (and deleted its claim of the same name, which is how this
    // one could be created). Deleting that taker's live lease would let two runs hold it.
    let current: LeaseRecord | 'gone' | undefined;
    try {
      current = openSealedJson(await backend.get(MAINTENANCE_LEASE), MAINTENANCE_LEASE) as unknown as LeaseRecord;
    } catch (err) {
      current = hasCode(err, 'OBJECT_NOT_FOUND') ? 'gone' : undefined;
    }
    if (holder ? current === 'gone' || current?.session !== holder.session : current !== undefined) {
      await backend.delete(claim);
      continue; // changed hands: judged again (a live holder is STORE_LOCKED)
    }
    await backend.delete(MAINTENANCE_LEASE);
    let won = true;
    try {
      await backend.put(MAINTENANCE_LEASE, bytes, { exclusive: true });
    } catch (err) {
      // A run that started just now found no lease between our delete and put, and took it:
      // it holds the lease; the next attempt says so (STORE_LOCKED).
      if (!hasCode(err, 'OBJECT_EXISTS')) throw err;
      won = false;
    } finally {
      await backend.delete(claim);
    }
    if (!won) continue;
    // Two takers can only race here if a claim was judged stale at the same moment: the one
    // whose lease is not the one now stored gives way.
    let held: LeaseRecord;
    try {
      held = openSealedJson(await backend.get(MAINTENANCE_LEASE), MAINTENANCE_LEASE) as unknown as LeaseRecord;
    } catch (err) {
      if (!hasCode(err, 'OBJECT_NOT_FOUND')) throw err;
      throw new ChunkyardError('STORE_LOCKED', 'another maintenance run is taking the maintenance lease over at this moment; try again later');
    }
    if (held.session !== session.id) throw new ChunkyardError('STORE_LOCKED', `another maintenance run took the maintenance lease over at the same moment (${held.command}); try again later`);
    await sweepClaims(backend, session);
    return lease(backend, session.id);
  }
  throw new ChunkyardError('STORE_LOCKED', 'the maintenance lease changed hands repeatedly; try again');
}

/**
 * Removes takeover claims whose claimer's session has ended, once the lease is ours. A taker
 * killed after it replaced the lease but before it deleted its claim leaves a claim named
 * after a lease nobody will take over again (the lease names the taker now): without this
 * sweep it would stay for ever. A claim of a live session is left alone (its taker gives way
 * when it finds the lease is not its own). Best effort: a failure here changes nothing.
 */
async function sweepClaims(backend: Backend, self: WriterSession): Promise<void> {
  try {
    const claims: string[] = [];
    for await (const o of backend.list('locks/')) if (o.name.startsWith('locks/maintenance.takeover.')) claims.push(o.name);
    if (claims.length === 0) return;
    const sessions = new Map((await listSessions(backend)).map((s) => [s.id, s]));
    const now = await backendTime(backend, self.name);
    for (const claim of claims) {
      let claimer: LeaseRecord | undefined;
      try {
        claimer = openSealedJson(await backend.get(claim), claim) as unknown as LeaseRecord;
      } catch (err) {
        if (hasCode(err, 'OBJECT_NOT_FOUND')) continue;
        claimer = undefined; // damaged: nobody can be judged by it
      }
      if (claimer && (claimer.session === self.id || (await sessionIsLive(sessions.get(claimer.session), now)))) continue;
      await backend.delete(claim);
    }
  } catch {
    // The next maintenance run sweeps again.
  }
}

function lease(backend: Backend, sessionId: string): MaintenanceLease {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        const held = openSealedJson(await backend.get(MAINTENANCE_LEASE), MAINTENANCE_LEASE) as unknown as LeaseRecord;
        if (held.session === sessionId) await backend.delete(MAINTENANCE_LEASE);
      } catch {
        // Gone or someone else's now: nothing of ours to release.
      }
    },
  };
}
