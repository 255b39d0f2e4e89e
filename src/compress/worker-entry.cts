/**
 * The file piscina starts its workers from: a CommonJS shim that imports the ES module
 * worker.ts with import().
 *
 * Why a shim: piscina loads a task file with require() first and import() second. On Node
 * 20.19+ require() of an ES module is allowed, and a require(esm) that meets a module graph
 * the ESM loader is still linking (the worker's own dynamic imports) aborts the whole process
 * ("v8::Module::IsGraphAsync must be used on an instantiated module"; seen in this suite,
 * see nodejs/node#55782). Through this shim the worker's modules are only ever loaded by the
 * ESM loader.
 */
type Run = (task: unknown) => Promise<unknown>;
let loaded: Promise<Run> | undefined;

function runTask(task: unknown): Promise<unknown> {
  loaded ??= import('./worker.js').then((m) => m.default as Run);
  return loaded.then((run) => run(task));
}

export = runTask;
