import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { defineCommand } from '../command.js';
import { oneOf } from '../args.js';
import { ChunkyardError } from '../../errors.js';
import { Store } from '../../store/store.js';
import { openFileReader, type ByteReader } from '../../chunking/batcher.js';
import { POLICIES } from '../../snapshot/manifest.js';
import { parseMetadata, snapshotLabels } from '../../snapshot/info.js';
import { printJson, storeAndPositionals } from '../store-args.js';
import { humanBytes, progressReporter, rate } from '../progress.js';
import { onInterrupt } from '../interrupt.js';
import { writeOut } from '../io.js';
import { DEFAULT_HOOK_TIMEOUT_MS, hooksFilePath, parseHookTimeout, stateDir, validateOnHookError, type BackupHooks } from '../../hooks/config.js';
import { recoverPending } from '../../hooks/journal.js';
import { describeHook, type HookResult } from '../../hooks/run.js';
import { raiseJitBudget } from '../../util/jit-budget.js';

const usage = '[<store>] <file|-> --target <name> [--tag T ...] [--host H] [--meta K=V ...] [--policy immediate|deferred|disabled] [--pre-hook CMD] [--post-hook CMD] [--hook-timeout 30s] [--on-hook-error fail|continue] [--no-hooks] [--dedupe-against-cold] [--json]';

export default defineCommand({
  name: 'backup',
  summary: 'back up a file or standard input as a new snapshot',
  usage,
  description:
    'The snapshot records its target, host (default: this machine\'s hostname), tags and key=value metadata; snapshots, restore and forget select by them. ' +
    'Ctrl-C (or SIGTERM) stops the backup cleanly: nothing is committed and its temporary files are removed. ' +
    "Hooks (docs/operations.md): the target's pre/post commands from this machine's hooks file (chunkyard policy --pre-hook), overridden by the flags here; " +
    'pre runs before the input is read, post once it has been read (before the commit), and also on failure, Ctrl-C or kill -9 (a watchdog). ' +
    'A pipe\'s producer starts with the shell, before pre: make it wait for pre (e.g. for a file pre creates) when it must see the frozen source.',
  flags: {
    target: { type: 'string', value: 'NAME', description: 'the target this snapshot belongs to (required)' },
    tag: { type: 'string', value: 'T', repeatable: true, description: 'a tag for the snapshot ("a,b" gives two); repeatable' },
    host: { type: 'string', value: 'H', description: 'the host it comes from (default: os.hostname())' },
    meta: { type: 'string', value: 'K=V', repeatable: true, description: 'a key=value label recorded with the snapshot; repeatable' },
    policy: { type: 'string', value: 'immediate|deferred|disabled', description: "dedupe policy for this stream (default: the target's, else the store's)" },
    'pre-hook': { type: 'string', value: 'CMD', description: "shell command run before the input is read (overrides the target's)" },
    'post-hook': { type: 'string', value: 'CMD', description: "shell command run once the input is read, and on any failure (overrides the target's)" },
    'hook-timeout': { type: 'string', value: 'DURATION', description: 'how long each hook may run, e.g. 30s (default: the target\'s, else 30s)' },
    'on-hook-error': { type: 'string', value: 'fail|continue', description: 'a failed hook: commit nothing (fail, default) or commit a crash-consistent snapshot (continue)' },
    'no-hooks': { type: 'boolean', description: "run none of the target's configured hooks" },
    json: { type: 'boolean', description: 'print the snapshot object as JSON (docs/api.md), with a hooks array when hooks ran; progress and hook results as JSON lines on stderr' },
    'dedupe-against-cold': { type: 'boolean', description: 'also reuse chunks that are only in the archive tier (a restore of this snapshot may then need the archive)' },
  },
  async run({ flags, positionals }, io) {
    raiseJitBudget(); // before the data path's functions first run (src/util/jit-budget.ts)
    const [storePath, file] = storeAndPositionals(positionals, ['<file|->'], `chunkyard backup ${usage}`, io.env);
    if (flags.target === undefined) throw new ChunkyardError('BAD_ARGUMENT', `--target is required (usage: chunkyard backup ${usage})`);
    const policy = oneOf(flags.policy, POLICIES, '--policy');
    // Checked before the store is opened: a bad label changes nothing and says so.
    const tags = flags.tag?.flatMap((t) => t.split(','));
    const labels = snapshotLabels({ host: flags.host, tags, metadata: flags.meta === undefined ? undefined : parseMetadata(flags.meta) });
    const hookFlags = {
      pre: flags['pre-hook'],
      post: flags['post-hook'],
      timeoutMs: flags['hook-timeout'] === undefined ? undefined : parseHookTimeout(flags['hook-timeout']),
      onError: flags['on-hook-error'] === undefined ? undefined : validateOnHookError(flags['on-hook-error'], '--on-hook-error'),
    };
    if (flags['no-hooks'] && (hookFlags.pre !== undefined || hookFlags.post !== undefined)) throw new ChunkyardError('BAD_ARGUMENT', '--no-hooks and --pre-hook/--post-hook contradict each other');
    // A backup (or daemon) killed between pre and post whose watchdog died too: its post
    // runs now, before anything else (src/hooks/journal.ts).
    const state = stateDir(io.env);
    for (const r of await recoverPending(state).catch(() => [])) {
      await writeOut(io.stderr, `chunkyard: warning: ran the post hook of a backup that was killed before it: ${describeHook(r)}\n`);
    }
    let source: Readable | ByteReader | undefined;
    let total: number | undefined;
    if (file === '-') source = io.stdin;
    else {
      // Check the file before opening the store, so a typo changes nothing and says so.
      let st;
      try {
        st = await stat(file!);
      } catch (err) {
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (st.isDirectory()) throw new ChunkyardError('BAD_ARGUMENT', `${file} is a directory; back up a file or a stream (e.g. tar -c DIR | chunkyard backup STORE - --target T)`);
      if (st.isFile()) total = st.size;
    }
    const interrupt = onInterrupt();
    let store: Store;
    try {
      store = await Store.open(storePath, { purpose: `backup --target ${flags.target}`, dedupeAgainstCold: flags['dedupe-against-cold'] === true });
    } catch (err) {
      interrupt.dispose();
      throw err;
    }
    let hooks: BackupHooks | undefined;
    const hookResults: HookResult[] = [];
    try {
      const configured = flags['no-hooks'] ? undefined : await store.targetHooks(flags.target, hooksFilePath(io.env));
      const pre = hookFlags.pre ?? configured?.pre;
      const post = hookFlags.post ?? configured?.post;
      if (pre !== undefined || post !== undefined) {
        hooks = {
          pre,
          post,
          timeoutSeconds: (hookFlags.timeoutMs ?? configured?.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS) / 1000,
          onError: hookFlags.onError ?? configured?.onError ?? 'fail',
          stateDir: state,
          onResult: (r) => {
            hookResults.push(r);
            if (flags.json) io.stderr.write(JSON.stringify({ event: 'hook', ...r }) + '\n');
            else {
              const out = !r.ok && r.output ? `; its output ends:\n${r.output.trimEnd().replace(/^/gm, '  ')}` : '';
              io.stderr.write(`chunkyard: ${describeHook(r)}${out}\n`);
            }
          },
        };
      }
    } catch (err) {
      interrupt.dispose();
      await store.close().catch(() => {});
      throw err;
    }
    const progress = progressReporter(io, { command: 'backup', json: flags.json });
    // A backup waiting for standard input (a producer that went quiet) would only see the
    // abort at its next read: end the input at once, so the abort happens now.
    const endInput = () => {
      if (source === io.stdin) io.stdin.destroy();
    };
    interrupt.signal.addEventListener('abort', endInput, { once: true });
    let committed: string | undefined;
    try {
      // A file is read straight into the pipeline's reused buffers (no allocation per read).
      source ??= await openFileReader(file!).catch((err: NodeJS.ErrnoException) => {
        throw new ChunkyardError('BAD_ARGUMENT', `cannot read ${file}: ${err.code ?? err.message}`);
      });
      const r = await store.backup(source!, {
        target: flags.target,
        policy,
        ...labels,
        ...(hooks ? { hooks } : {}),
        signal: interrupt.signal,
        onProgress: (p) => progress.update({ phase: 'backup', done: p.bytes, total, unit: 'bytes', note: `new ${humanBytes(p.newBytes)}` }),
      }).catch((err: unknown) => {
        // Whatever the interrupted input made the backup fail with, the cause is the interrupt.
        if (interrupt.signal.aborted) throw new ChunkyardError('ABORTED', `${(interrupt.signal.reason as Error).message}: the backup stopped, nothing was committed`, { cause: err });
        throw err;
      });
      committed = r.id;
      progress.done();
      if (flags.json) return await printJson(io.stdout, hooks ? { ...r, hooks: hookResults } : r);
      await writeOut(io.stdout, `${r.id}\n`);
      await writeOut(
        io.stderr,
        `snapshot ${r.id} of ${r.target}: ${humanBytes(r.logicalBytes)} in ${r.chunks} chunks, ${r.newChunks} new (${humanBytes(r.newBytes)}, stored ${humanBytes(r.storedBytes)}), ${r.seconds.toFixed(2)} s, ${rate(r.logicalBytes, r.seconds)}\n`,
      );
    } catch (err) {
      // Say whether a snapshot exists: a scheduler retries or alerts on this line.
      if (err instanceof ChunkyardError && committed === undefined) err.message += ' (no snapshot was committed)';
      throw err;
    } finally {
      progress.done();
      if (source && source !== io.stdin) await (source as ByteReader).close().catch(() => {});
      // After the commit nothing turns success into failure: closing is tidying up.
      await store.close().catch(async (err: Error) => {
        if (committed === undefined) throw err;
        await writeOut(io.stderr, `chunkyard: warning: snapshot ${committed} was committed; closing the store afterwards failed: ${err.message}\n`);
      });
      interrupt.signal.removeEventListener('abort', endInput);
      interrupt.dispose();
    }
  },
});
