/**
 * CryptBackend (the encrypting wrapper of docs/encryption.md, "Objects") over a MemoryBackend:
 * the shared backend conformance suite. Every object class is exercised by it (clear names,
 * packs, stream objects, sealed objects), so the wrapper keeps the contract users of any
 * Backend rely on: create-only puts, ranges, listings, writers.
 */
import { runBackendConformance } from '../../src/backend/conformance.js';
import { MemoryBackend } from '../../src/backend/memory.js';
import { CryptBackend } from '../../src/crypto/crypt-backend.js';
import { deriveKeys, newMasterKey } from '../../src/crypto/keys.js';
import { initBlake3 } from '../../src/util/blake3.js';

await initBlake3();

runBackendConformance('CryptBackend over MemoryBackend', async () => ({
  backend: new CryptBackend(new MemoryBackend(), deriveKeys(newMasterKey())),
  cleanup: async () => {},
}));
