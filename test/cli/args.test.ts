import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatFlags, oneOf, parseArgs } from '../../src/cli/args.js';
import { ChunkyardError } from '../../src/errors.js';

const specs = {
  engine: { type: 'string', value: 'NAME', description: 'engine' },
  stats: { type: 'boolean', short: 's', description: 'stats' },
  'avg-size': { type: 'string', value: 'N', description: 'avg' },
} as const;

function usage(fn: () => unknown, fragment: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ChunkyardError && e.code === 'BAD_ARGUMENT' && e.message.includes(fragment));
}

test('flags with separate and inline values, booleans, positionals', () => {
  const r = parseArgs(['a', '--engine', 'wasm', '--avg-size=64K', 'b', '--stats', '-'], specs);
  assert.deepEqual(r.flags, { engine: 'wasm', 'avg-size': '64K', stats: true });
  assert.deepEqual(r.positionals, ['a', 'b', '-']);
});

test('short aliases, "--" ends flags, values may start with "-"', () => {
  const r = parseArgs(['-s', '--avg-size', '-5', '--', '--engine', '-s'], specs);
  assert.deepEqual(r.flags, { stats: true, 'avg-size': '-5' });
  assert.deepEqual(r.positionals, ['--engine', '-s']);
  assert.deepEqual(parseArgs(['--engine='], specs).flags, { engine: '' });
});

test('strictness: unknown flags, missing values, values on booleans, repeats', () => {
  usage(() => parseArgs(['--bogus'], specs, 'chunkyard chunks'), 'chunkyard chunks: unknown option --bogus');
  usage(() => parseArgs(['--bogus=1'], specs), 'unknown option --bogus');
  usage(() => parseArgs(['-x'], specs), 'unknown option -x');
  usage(() => parseArgs(['-sx'], specs), 'unknown option -sx');
  usage(() => parseArgs(['--engine'], specs), '--engine needs a value');
  usage(() => parseArgs(['--stats=yes'], specs), '--stats takes no value');
  usage(() => parseArgs(['--stats', '-s'], specs), '--stats is given more than once');
  usage(() => parseArgs(['--constructor'], specs), 'unknown option --constructor');
});

test('oneOf and formatFlags', () => {
  assert.equal(oneOf(undefined, ['a', 'b'], '--x'), undefined);
  assert.equal(oneOf('b', ['a', 'b'], '--x'), 'b');
  usage(() => oneOf('c', ['a', 'b'], '--x'), '--x = "c": must be one of a, b');
  const help = formatFlags(specs);
  assert.match(help, /--engine NAME\s+engine/);
  assert.match(help, /-s, --stats\s+stats/);
});

test('repeatable flags collect every value in order; others still refuse repeats', () => {
  const withTags = { ...specs, tag: { type: 'string', value: 'T', repeatable: true, description: 'tag' } } as const;
  const r = parseArgs(['--tag', 'a', '--tag=b,c', 'pos', '--tag', '-d'], withTags);
  assert.deepEqual(r.flags.tag, ['a', 'b,c', '-d']);
  assert.deepEqual(r.positionals, ['pos']);
  assert.equal(parseArgs([], withTags).flags.tag, undefined);
  usage(() => parseArgs(['--engine', 'a', '--engine', 'b'], withTags), '--engine is given more than once');
  assert.match(formatFlags(withTags), /--tag T \.\.\./);
});
