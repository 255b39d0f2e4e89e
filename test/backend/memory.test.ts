/** MemoryBackend: the shared conformance suite (data isolation is part of it). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBackendConformance } from '../../src/backend/conformance.js';
import { MemoryBackend } from '../../src/backend/memory.js';

runBackendConformance('MemoryBackend', async () => ({
  backend: new MemoryBackend(),
  cleanup: async () => {},
}));

test('MemoryBackend: location names the label', () => {
  assert.equal(new MemoryBackend('unit').location, 'memory:unit');
});
