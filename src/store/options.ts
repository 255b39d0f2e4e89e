/**
 * The option objects of the public Store methods (and of analyze), checked: a misspelt or unknown option
 * (`hostname` for `host`, `tag` for `tags`) is BAD_ARGUMENT naming it, not silently ignored.
 * One list per method, here, beside nothing else: adding an option to a method means adding
 * its name to the method's list (a test walks every method with a bogus option).
 */
import { badArgument } from '../errors.js';

export const OPTION_NAMES = {
  'Store.init': ['avgSize', 'minSize', 'maxSize', 'normalization', 'compression', 'dedupe', 'packSize', 's3Endpoint', 'delta', 'encryption', 'keysFrom', 'kdf', 'password', 'passwordFile', 'passwordCommand', 'keyFile', 'zstdLevel'],
  'Store.open': ['readOnly', 'engine', 'threads', 'purpose', 'cacheDir', 's3Endpoint', 'archiveOpener', 'dedupeAgainstCold', 'deltaIndexChunks', 'password', 'passwordFile', 'passwordCommand', 'keyFile'],
  'Store.tier': ['archive', 'olderThan', 'dryRun', 'minRetention', 'archivePackSize', 'signal', 'onProgress', 'onStep'],
  'Store.backup': ['target', 'policy', 'signal', 'onProgress', 'sliceBytes', 'host', 'tags', 'metadata', 'hooks'],
  'Store.process': ['signal', 'onProgress', 'ids'],
  'Store.restore': ['start', 'end', 'signal'],
  'Store.restoreTo': ['start', 'end', 'position', 'sparse', 'signal', 'onProgress'],
  'Store.resolveSnapshot': ['host', 'tags'],
  'Store.snapshots': ['target', 'host', 'tags'],
  'Store.setPolicy': ['dedupe', 'compression', 'delta'],
  'Store.forget': ['ids', 'policy', 'target', 'host', 'tags', 'dryRun'],
  'Store.forget policy': ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'within', 'tags'],
  'Store.prune': ['dryRun', 'rewriteBelow', 'deferDelete', 'recompress', 'signal', 'onProgress'],
  'Store.check': ['readData', 'signal', 'onProgress', 'threads', 'engine', 'purpose', 's3Endpoint', 'archiveOpener', 'password', 'passwordFile', 'passwordCommand', 'keyFile'],
  'Store.repair': ['readData', 'onProgress', 'threads', 'purpose', 'cacheDir', 's3Endpoint', 'password', 'passwordFile', 'passwordCommand', 'keyFile'],
  analyze: ['avgSizes', 'compression', 'zstdLevel', 'memoryBytes', 'engine', 'threads', 'tmpDir', 'delta', 'signal', 'onProgress'],
} as const satisfies Record<string, readonly string[]>;

export type OptionsOf = keyof typeof OPTION_NAMES;

/**
 * Checks that `options` is undefined or a plain object whose own keys are all known to
 * `method`; returns it (or {}) for chaining. Keys whose value is undefined are still checked:
 * `{ hostname: undefined }` is a misspelling all the same.
 */
export function checkOptions<T extends object>(method: OptionsOf, options: T | undefined, extra: readonly string[] = []): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw badArgument(`${method}: options must be an object, not ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const known: readonly string[] = OPTION_NAMES[method];
  for (const key of Object.keys(options)) {
    if (!known.includes(key) && !extra.includes(key)) {
      throw badArgument(`${method}: unknown option ${JSON.stringify(key)} (known: ${[...known, ...extra].join(', ')})`);
    }
  }
  return options;
}
