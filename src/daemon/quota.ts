/**
 * Per-token quotas on stored bytes (docs/daemon.md, "Quotas").
 *
 * What is counted: for each snapshot a token uploaded, the bytes its backup added to the
 * store (`storedBytes` of the 201 answer: the compressed size of its new chunks; for a
 * deferred upload, its staged size, which is all of its bytes). A token's usage is the sum
 * over its snapshots that still exist, so forgetting a snapshot gives its bytes back
 * (approximately: prune frees a chunk only once no snapshot uses it).
 *
 * Where it is kept: one small object per token in the store, `daemon/usage/<key>.json`
 * (sealed JSON, `{"version":1,"key":"<key>","snapshots":{"<id>":bytes,...}}`, `key` = 32 hex
 * digits of the token's SHA-256, never the token), written after the snapshot committed and
 * before its 201. It survives restarts; a daemon killed between the commit and that write
 * leaves that one snapshot uncounted.
 *
 * While an upload runs its stored size is not known yet: its new bytes so far (before
 * compression; for a deferred upload, every byte) count against what is left, together with
 * the token's other uploads in flight, and the upload is stopped with QUOTA_EXCEEDED as
 * soon as they would pass the quota. So an upload that compression would have made fit can
 * still be refused; one that gets its 201 never takes the token past its quota by more
 * than the compression saved.
 */
import { ChunkyardError, hasCode } from '../errors.js';
import type { Backend } from '../backend/types.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import type { Grant } from './auth.js';
import type { SnapshotCatalog } from './snapshot-list.js';

export const USAGE_PREFIX = 'daemon/usage/';

/** One upload's claim on its token's quota while it runs. */
export interface QuotaTicket {
  /** The upload has this many bytes counted against the quota now; throws QUOTA_EXCEEDED past it. */
  update(bytes: number): void;
  /** The upload ended (committed or not): its in-flight bytes no longer count. */
  release(): void;
}

interface Account {
  /** Snapshot id → stored bytes, as recorded in the store. */
  snapshots: Map<string, number>;
  /** In-flight bytes of each running upload. */
  inflight: Set<{ bytes: number }>;
  /** Writes of the usage object, one after another. */
  writing: Promise<void>;
}

export class QuotaLedger {
  private readonly accounts = new Map<string, Promise<Account>>();

  constructor(
    private readonly backend: Backend,
    private readonly catalog: SnapshotCatalog,
  ) {}

  private account(key: string): Promise<Account> {
    let a = this.accounts.get(key);
    if (!a) {
      a = this.read(key);
      this.accounts.set(key, a);
      a.catch(() => this.accounts.delete(key));
    }
    return a;
  }

  private async read(key: string): Promise<Account> {
    const snapshots = new Map<string, number>();
    let bytes: Buffer | undefined;
    try {
      bytes = await this.backend.get(`${USAGE_PREFIX}${key}.json`);
    } catch (err) {
      if (!hasCode(err, 'OBJECT_NOT_FOUND')) throw err;
    }
    if (bytes) {
      const o = openSealedJson(bytes, `quota usage ${key}`);
      const recorded = o.snapshots as Record<string, unknown> | undefined;
      if (o.version !== 1 || typeof recorded !== 'object' || recorded === null) throw new ChunkyardError('CORRUPT', `quota usage ${key}: not a version-1 usage object`);
      for (const [id, n] of Object.entries(recorded)) if (/^[0-9a-f]{16}$/.test(id) && typeof n === 'number' && n >= 0) snapshots.set(id, n);
    }
    return { snapshots, inflight: new Set(), writing: Promise.resolve() };
  }

  /** Stored bytes of the token's snapshots that still exist. */
  async used(key: string): Promise<number> {
    const a = await this.account(key);
    const live = new Set((await this.catalog.list()).map((s) => s.id));
    let sum = 0;
    for (const [id, n] of a.snapshots) if (live.has(id)) sum += n;
    return sum;
  }

  /**
   * Admits an upload of a token with a quota: QUOTA_EXCEEDED if the token is already at it.
   * The ticket then follows the upload's bytes.
   */
  async begin(grant: Grant & { quota: number }): Promise<QuotaTicket> {
    const a = await this.account(grant.key);
    const used = await this.used(grant.key);
    const inflight = () => [...a.inflight].reduce((s, t) => s + t.bytes, 0);
    if (used + inflight() >= grant.quota) throw exceeded(grant.quota, used, 0);
    const mine = { bytes: 0 };
    a.inflight.add(mine);
    return {
      update(bytes: number) {
        mine.bytes = bytes;
        if (used + inflight() > grant.quota) throw exceeded(grant.quota, used, bytes);
      },
      release() {
        a.inflight.delete(mine);
      },
    };
  }

  /**
   * Settles a committed snapshot of a token with a quota: if the token's usage plus its
   * stored bytes fit the quota, records it (durable when this resolves); if not, rejects
   * with QUOTA_EXCEEDED, and the caller forgets the snapshot (it was never acknowledged).
   * Check and record run one at a time per token, so two uploads that finish together
   * cannot both take the last of a quota. Any other rejection is the usage object's write.
   */
  async commit(grant: Grant & { quota: number }, id: string, storedBytes: number): Promise<void> {
    const a = await this.account(grant.key);
    const run = a.writing.then(async () => {
      const used = await this.used(grant.key);
      if (used + storedBytes > grant.quota) throw exceeded(grant.quota, used, storedBytes);
      a.snapshots.set(id, storedBytes);
      // Forgotten snapshots are dropped from the object as it is rewritten.
      const live = new Set((await this.catalog.list()).map((s) => s.id));
      const kept: Record<string, number> = {};
      for (const [sid, n] of a.snapshots) if (sid === id || live.has(sid)) kept[sid] = n;
      await this.backend.put(`${USAGE_PREFIX}${grant.key}.json`, sealJson({ version: 1, key: grant.key, snapshots: kept }));
    });
    a.writing = run.catch(() => {});
    await run;
  }
}

function exceeded(quota: number, used: number, uploading: number): ChunkyardError {
  const what = uploading > 0 ? `, and this upload would add ${uploading}` : '';
  return new ChunkyardError('QUOTA_EXCEEDED', `this token's quota of ${quota} stored bytes is used up (${used} bytes in its snapshots and uploads in flight${what}); forget some of its snapshots or raise its quota`);
}
