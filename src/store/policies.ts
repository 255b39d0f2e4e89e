/**
 * Per-target policy settings (policies.json): the dedupe mode and compression a target's
 * backups use unless a backup overrides the mode. A sealed JSON object replaced atomically;
 * absent means no per-target settings. docs/format.md, "Policies".
 */
import type { Backend } from '../backend/types.js';
import { ChunkyardError, badArgument } from '../errors.js';
import type { CompressionName } from '../compress/messages.js';
import { validatePolicy, validateTargetName, type DedupePolicy } from '../snapshot/manifest.js';
import { openSealedJson, sealJson } from '../util/sealed-json.js';
import { validateCompression, validateDelta, type DeltaSetting, type StoreConfig } from './config.js';

export const POLICIES_NAME = 'policies.json';

export interface TargetPolicy {
  dedupe?: DedupePolicy;
  compression?: CompressionName;
  /** Delta compression of similar chunks (docs/delta.md); the store's default when absent. */
  delta?: DeltaSetting;
}

export interface PolicyFile {
  version: 1;
  targets: Record<string, TargetPolicy>;
}

/** How to get out of a damaged policies.json: said by every error that reports one. */
export const POLICIES_FIX =
  "no backup runs until it is replaced: 'chunkyard repair <store>' keeps the settings that still read, " +
  "'chunkyard policy <store> --replace-damaged [<target> --dedupe … --compression …]' starts afresh; " +
  'a backup with --policy deferred still runs (staging needs no policy)';

/**
 * The policy file; no file means no per-target settings. A damaged one is CORRUPT, whose
 * message names policies.json and the fix (POLICIES_FIX): a backup never guesses a
 * target's policy.
 */
export async function readPolicies(backend: Backend): Promise<PolicyFile> {
  let bytes: Buffer;
  try {
    bytes = await backend.get(POLICIES_NAME);
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') return { version: 1, targets: {} };
    throw err;
  }
  const damaged = (why: string, cause?: unknown) => new ChunkyardError('CORRUPT', `policies.json is damaged (${why}): ${POLICIES_FIX}`, { cause });
  let body: PolicyFile;
  try {
    body = openSealedJson(bytes, 'policies.json') as unknown as PolicyFile;
  } catch (err) {
    throw damaged((err as Error).message, err);
  }
  if (body.version !== 1) throw new ChunkyardError('FORMAT_UNSUPPORTED', `policies.json version ${String(body.version)} is not supported (written by a newer build?)`);
  if (!body.targets || typeof body.targets !== 'object' || Array.isArray(body.targets)) throw damaged('it has no targets object');
  return body;
}

/** A target's settings as found in a policy file, or undefined when they do not validate. */
function validEntry(target: string, value: unknown): TargetPolicy | undefined {
  try {
    validateTargetName(target);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    const { dedupe, compression, delta, ...rest } = value as Record<string, unknown>;
    if (Object.keys(rest).length > 0) return undefined;
    const out: TargetPolicy = {};
    if (dedupe !== undefined) out.dedupe = validatePolicy(dedupe);
    if (compression !== undefined) out.compression = validateCompression(compression as string);
    if (delta !== undefined) out.delta = validateDelta(delta);
    return Object.keys(out).length > 0 ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The settings that can still be read out of a damaged policy file: entries whose name and
 * values validate, from the JSON if it still parses, else from the text of each
 * `"name": { … }` group. They failed the file's checksum, so they are a best effort: repair
 * writes them back and lists them by name, for the operator to check.
 */
export function salvagePolicies(bytes: Buffer): { targets: Record<string, TargetPolicy>; dropped: number } {
  const targets: Record<string, TargetPolicy> = {};
  let dropped = 0;
  const take = (name: string, value: unknown) => {
    const e = validEntry(name, value);
    if (e && !(name in targets)) targets[name] = e;
    else dropped++;
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const t = (parsed as { targets?: unknown } | undefined)?.targets;
  if (t !== null && typeof t === 'object' && !Array.isArray(t)) {
    for (const [name, value] of Object.entries(t as Record<string, unknown>)) take(name, value);
    return { targets, dropped };
  }
  const text = bytes.toString('latin1');
  for (const g of text.matchAll(/"([^"\\]*)"\s*:\s*\{([^{}]*)\}/g)) {
    const fields: Record<string, string> = {};
    let odd = false;
    for (const f of g[2]!.split(',')) {
      if (f.trim() === '') continue;
      const kv = /^\s*"([^"]*)"\s*:\s*"([^"]*)"\s*$/.exec(f);
      if (kv) fields[kv[1]!] = kv[2]!;
      else odd = true;
    }
    if (odd) dropped++;
    else take(g[1]!, fields);
  }
  return { targets, dropped };
}

/**
 * Replaces a damaged policies.json (repair): the salvaged entries are written as a new,
 * sealed file, after the damaged one was copied to damaged/policies.json (a previous copy
 * there is replaced). Undefined when the file is absent or whole. A file of a newer version
 * (it verifies) is not ours to replace: FORMAT_UNSUPPORTED.
 */
export async function replaceDamagedPolicies(backend: Backend, keep: 'salvage' | 'none' = 'salvage'): Promise<{ damage: string; kept: string[]; dropped: number; movedTo: string } | undefined> {
  let damage: string;
  try {
    await readPolicies(backend);
    return undefined;
  } catch (err) {
    if (!(err instanceof ChunkyardError) || err.code !== 'CORRUPT') throw err;
    damage = (err.cause as Error | undefined)?.message ?? err.message.replace(/^policies\.json is damaged \((.*)\): [^]*$/, '$1');
  }
  const bytes = await backend.get(POLICIES_NAME);
  const salvaged = keep === 'salvage' ? salvagePolicies(bytes) : { targets: {}, dropped: 0 };
  const movedTo = `damaged/${POLICIES_NAME}`;
  await backend.put(movedTo, bytes);
  await backend.put(POLICIES_NAME, sealJson({ version: 1, targets: salvaged.targets }));
  return { damage, kept: Object.keys(salvaged.targets), dropped: salvaged.dropped, movedTo };
}

/** Sets (or, with both fields undefined, clears) a target's settings. Validates before writing anything. */
export async function setTargetPolicy(backend: Backend, target: string, change: { dedupe?: string; compression?: string; delta?: string }, options: { replaceDamaged?: boolean } = {}): Promise<PolicyFile> {
  validateTargetName(target);
  const next: TargetPolicy = {};
  if (change.dedupe !== undefined) next.dedupe = validatePolicy(change.dedupe);
  if (change.compression !== undefined) next.compression = validateCompression(change.compression);
  if (change.delta !== undefined) next.delta = validateDelta(change.delta);
  if (Object.keys(next).length === 0) throw badArgument('give --dedupe, --compression and/or --delta to set a policy for a target');
  // A damaged file is replaced only when asked: every other target's settings go with it.
  if (options.replaceDamaged) await replaceDamagedPolicies(backend, 'none');
  const file = await readPolicies(backend);
  const merged = { ...file.targets[target], ...next };
  file.targets[target] = merged;
  await backend.put(POLICIES_NAME, sealJson({ ...file }));
  return file;
}

export interface EffectivePolicy {
  dedupe: DedupePolicy;
  compression: CompressionName;
  /** Delta compression on for this target's backups (docs/delta.md). */
  delta: boolean;
}

/**
 * The policy a backup of `target` runs with, read from the store. While policies.json is
 * damaged only an explicit deferred override runs (staging writes raw bytes: no setting of
 * the target matters until `process`, which waits for the file to be replaced); anything
 * else is refused (CORRUPT, naming the fix) rather than run with a guessed policy.
 */
export async function backupPolicy(backend: Backend, config: StoreConfig, target: string, override?: DedupePolicy): Promise<EffectivePolicy> {
  try {
    return effectivePolicy(config, await readPolicies(backend), target, override);
  } catch (err) {
    if (override === 'deferred' && err instanceof ChunkyardError && err.code === 'CORRUPT') return { dedupe: 'deferred', compression: config.compression, delta: false };
    throw err;
  }
}

/** The policy a backup of `target` runs with: the override, else the target's, else the store's. */
export function effectivePolicy(config: StoreConfig, policies: PolicyFile, target: string, override?: DedupePolicy): EffectivePolicy {
  const t = policies.targets[target] ?? {};
  return { dedupe: override ?? t.dedupe ?? config.dedupe, compression: t.compression ?? config.compression, delta: (t.delta ?? config.delta ?? 'off') === 'on' };
}

/**
 * A target's hooks are policy too, but never stored here: anyone who can write the store
 * can write policies.json, and a hook runs with the backup's rights. `chunkyard policy
 * --pre-hook …` writes them to this machine's hooks file instead (src/hooks/config.ts,
 * docs/operations.md "Hooks"); readPolicies ignores any hook-like field a policies.json
 * carries, and nothing reads commands from the store or a replication source.
 */
export { setTargetHooks, targetHooks, readHooksFile, hooksFilePath, parseHookTimeout, validateOnHookError, type TargetHooksEntry } from '../hooks/config.js';
