// A passphrase's Argon2id, started before the command-line bundle loads (docs/encryption.md,
// "Opening a store"). Every command that opens an encrypted store with a passphrase runs the
// KDF of its password slot: ~15–20 ms of one core, during which the main thread had nothing
// to do, after ~12–15 ms of loading and compiling the bundle during which the other core had
// nothing to do. bin/chunkyard calls this first, so that the KDF runs on libuv's pool while
// the bundle loads; the open (src/crypto/keys.ts, argon2id) takes the result when it asks for
// exactly that KDF: the same passphrase, salt and parameters, computed by the same native
// code, so the slot key is the one it would have computed itself. Everything else is as
// before: the slot is still read, checked and authenticated by the open, the wrong
// passphrase still fails there (WRONG_PASSWORD), and a result nobody asks for is dropped.
//
// Only the plain cases, and never a side effect the command would not have had: the secret
// must be CHUNKYARD_PASSWORD itself (no file is read, no command run: a password file may be
// a pipe, a command may prompt), with no other secret named on the command line or in the
// environment; the store a local directory named by an argument or CHUNKYARD_STORE that
// holds config.json and keys/; the slot an Argon2id password slot within the bounds the open
// enforces (keys.ts, validSlot), the first one in the open's order. Nothing is written and
// nothing thrown: any doubt, and the open computes the KDF itself as before.
'use strict';

const KEY = Symbol.for('chunkyard.earlyKdf');
// The reads the KDF needed (config.json and the key slots), for the open (keys.ts, takeEarlyStoreReads).
const READS = Symbol.for('chunkyard.earlyStoreReads');
const SLOT_NAME = /^[0-9a-f]{16}\.json$/;
// As src/crypto/keys.ts: a slot is read before it is authenticated, so its cost is bounded.
const ARGON2_MAX_M = 2 * 1024 * 1024;
const ARGON2_MAX_T = 64;
const ARGON2_MAX_P = 16;
// Another secret named on the command line (replicate's --from-password-file: another store's).
const SECRET_OPTIONS = /^--(key-file|password-file|password-command|from-[a-z-]+)(=|$)/;
const OTHER_SECRETS = ['CHUNKYARD_KEY_FILE', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND'];

const int = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;

/**
 * The store's config.json and its keys/ slot files, read now, as the open would read them
 * (every `keys/` name of 16 hex digits and `.json`). Throws when any of them does not read:
 * then no KDF starts and nothing is handed over (the open reads everything itself and reports
 * what it finds).
 */
function readStore(fs, path, store) {
  const keysDir = path.join(store, 'keys');
  const slots = [];
  for (const name of fs.readdirSync(keysDir)) {
    if (SLOT_NAME.test(name)) slots.push({ name: `keys/${name}`, bytes: fs.readFileSync(path.join(keysDir, name)) });
  }
  return { location: path.resolve(store), config: fs.readFileSync(path.join(store, 'config.json')), slots, at: Date.now() };
}

/** The first Argon2id password slot of the open's order among `slots` (readStore's), or undefined. */
function firstArgon2Slot(slots) {
  const found = [];
  for (const { name, bytes } of slots) {
    let s;
    try {
      s = JSON.parse(bytes.toString('utf8'));
    } catch {
      continue;
    }
    const k = s && s.kdf;
    if (!s || s.kind !== 'password' || !k || k.name !== 'argon2id' || typeof s.created !== 'string' || s.id !== name.slice(5, 21)) continue;
    if (!int(k.p, 1, ARGON2_MAX_P) || !int(k.t, 1, ARGON2_MAX_T) || !int(k.m, 8 * k.p, ARGON2_MAX_M) || typeof k.salt !== 'string') continue;
    const salt = Buffer.from(k.salt, 'base64');
    if (salt.length !== 16) continue;
    found.push({ created: s.created, id: s.id, salt, m: k.m, t: k.t, p: k.p });
  }
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  found.sort((a, b) => cmp(a.created, b.created) || cmp(a.id, b.id));
  return found[0];
}

/**
 * Starts the KDF when the command line and environment name a passphrase and a local
 * encrypted store (above); leaves its result for keys.ts under Symbol.for('chunkyard.earlyKdf').
 */
function startEarlyKdf(argv = process.argv.slice(2), env = process.env, root = require('node:path').join(__dirname, '..')) {
  try {
    const password = env.CHUNKYARD_PASSWORD;
    if (!password || env.CHUNKYARD_ENGINE === 'wasm' || OTHER_SECRETS.some((k) => env[k])) return undefined;
    if (argv.length === 0 || argv[0] === 'init' || argv.some((a) => SECRET_OPTIONS.test(a))) return undefined;
    const fs = require('node:fs');
    const path = require('node:path');
    // The store: CHUNKYARD_STORE, else the first argument that is a directory with config.json
    // and keys/ (the command names it first; an option's value is never such a directory).
    const candidates = [...(env.CHUNKYARD_STORE ? [env.CHUNKYARD_STORE] : []), ...argv.filter((a) => !a.startsWith('-') && !a.includes('://')).slice(0, 4)];
    let store;
    const isStore = (c) => {
      try {
        return fs.statSync(path.join(c, 'config.json'), { throwIfNoEntry: false })?.isFile() && fs.statSync(path.join(c, 'keys'), { throwIfNoEntry: false })?.isDirectory();
      } catch {
        return false; // ENOTDIR (a file named before the store), EACCES, ...
      }
    };
    for (const c of candidates) {
      if (isStore(c)) {
        store = c;
        break;
      }
    }
    if (!store) return undefined;
    const reads = readStore(fs, path, store);
    const slot = firstArgon2Slot(reads.slots);
    if (!slot) return undefined;
    const addon = require(path.join(root, 'native', 'chunkyard.node'));
    if (typeof addon.argon2idAsync !== 'function' || !String(addon.version()).split(' ').includes('argon2id')) return undefined;
    const pw = Buffer.from(password, 'utf8');
    let result;
    try {
      result = Promise.resolve(addon.argon2idAsync(pw, slot.salt, slot.m, slot.t, slot.p)).then(
        (key) => (Buffer.isBuffer(key) && key.length === 32 ? key : undefined),
        () => undefined,
      );
    } catch {
      return undefined;
    }
    const entry = { password: pw, salt: slot.salt, m: slot.m, t: slot.t, p: slot.p, result };
    globalThis[KEY] = [entry];
    // The open of this store takes these instead of listing and reading them again (a few
    // reads on libuv's pool, ~2 ms of the command): the same files, read a few milliseconds
    // earlier, checked and authenticated by the open exactly as its own reads would be.
    globalThis[READS] = reads;
    return entry;
  } catch {
    return undefined;
  }
}

module.exports = { startEarlyKdf, firstArgon2Slot, readStore, ARGON2_BOUNDS: { m: ARGON2_MAX_M, t: ARGON2_MAX_T, p: ARGON2_MAX_P } };
