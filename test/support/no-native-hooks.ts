/**
 * Module hooks (node:module register) that replace src/native/addon.js (the addon's binding) with a stub whose
 * loadNative() fails, to test the wasm fallback in a child process whatever is built.
 */
interface LoadResult {
  format: string;
  source?: string;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context: unknown) => Promise<LoadResult>;
interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

const NATIVE = /\/src\/native\/addon\.js$/;

/** Resolves addon.js even when it has not been built. */
export async function resolve(
  specifier: string,
  context: ResolveContext,
  nextResolve: NextResolve,
): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier.endsWith('addon.js') && context.parentURL !== undefined) {
    const url = new URL(specifier, context.parentURL).href;
    if (NATIVE.test(url)) return { url, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

const STUB = `
import { ChunkyardError } from '../errors.js';
export function loadNative() {
  throw new ChunkyardError('NATIVE_UNAVAILABLE', 'simulated: native/chunkyard.node is missing');
}
export function nativeIfAllowed() { return undefined; }
export function copyBytes(dst, offset, src) { dst.set(src, offset); }
export function fromNativeError(err) { return err; }
export async function native(call) { return call(); }
`;

export async function load(url: string, context: unknown, nextLoad: NextLoad): Promise<LoadResult> {
  if (NATIVE.test(url)) {
    return { format: 'module', source: STUB, shortCircuit: true };
  }
  return nextLoad(url, context);
}
