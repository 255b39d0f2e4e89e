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
import { validateCompression, type StoreConfig } from './config.js';

export const POLICIES_NAME = 'policies.json';

export interface TargetPolicy {
  dedupe?: DedupePolicy;
  compression?: CompressionName;
}

export interface PolicyFile {
  version: 1;
  targets: Record<string, TargetPolicy>;
}

export async function readPolicies(backend: Backend): Promise<PolicyFile> {
  let bytes: Buffer;
  try {
    bytes = await backend.get(POLICIES_NAME);
  } catch (err) {
    if ((err as { code?: string }).code === 'OBJECT_NOT_FOUND') return { version: 1, targets: {} };
    throw err;
  }
  const body = openSealedJson(bytes, `policy settings at ${backend.location}`) as unknown as PolicyFile;
  if (body.version !== 1) throw new ChunkyardError('FORMAT_UNSUPPORTED', `policies.json version ${String(body.version)} is not supported`);
  if (!body.targets || typeof body.targets !== 'object') throw new ChunkyardError('CORRUPT', 'policies.json has no targets object');
  return body;
}

/** Sets (or, with both fields undefined, clears) a target's settings. Validates before writing anything. */
export async function setTargetPolicy(backend: Backend, target: string, change: { dedupe?: string; compression?: string }): Promise<PolicyFile> {
  validateTargetName(target);
  const next: TargetPolicy = {};
  if (change.dedupe !== undefined) next.dedupe = validatePolicy(change.dedupe);
  if (change.compression !== undefined) next.compression = validateCompression(change.compression);
  if (Object.keys(next).length === 0) throw badArgument('give --dedupe and/or --compression to set a policy for a target');
  const file = await readPolicies(backend);
  const merged = { ...file.targets[target], ...next };
  file.targets[target] = merged;
  await backend.put(POLICIES_NAME, sealJson({ ...file }));
  return file;
}

export interface EffectivePolicy {
  dedupe: DedupePolicy;
  compression: CompressionName;
}

/** The policy a backup of `target` runs with: the override, else the target's, else the store's. */
export function effectivePolicy(config: StoreConfig, policies: PolicyFile, target: string, override?: DedupePolicy): EffectivePolicy {
  const t = policies.targets[target] ?? {};
  return { dedupe: override ?? t.dedupe ?? config.dedupe, compression: t.compression ?? config.compression };
}
