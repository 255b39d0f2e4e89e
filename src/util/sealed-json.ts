/**
 * JSON metadata files (config, snapshot manifests) carry a BLAKE3 checksum of their own
 * content, so a flipped bit is reported as CORRUPT instead of being believed.
 *
 * The checksum covers the compact JSON text (JSON.stringify) of the object without its
 * "checksum" field, with keys in file order; the file itself is pretty-printed for people.
 */
import { blake3Hex } from './blake3.js';
import { ChunkyardError } from '../errors.js';

export function sealJson(body: Record<string, unknown>): Buffer {
  if ('checksum' in body) throw new Error('sealJson: body must not carry a checksum field');
  const checksum = blake3Hex(Buffer.from(JSON.stringify(body)));
  return Buffer.from(JSON.stringify({ ...body, checksum }, null, 2) + '\n');
}

/** Parses and verifies a sealed JSON file; `what` names it in errors. */
export function openSealedJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new ChunkyardError('CORRUPT', `${what} is not valid JSON`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ChunkyardError('CORRUPT', `${what} is not a JSON object`);
  }
  const { checksum, ...body } = parsed as Record<string, unknown>;
  if (typeof checksum !== 'string') throw new ChunkyardError('CORRUPT', `${what} has no checksum`);
  const actual = blake3Hex(Buffer.from(JSON.stringify(body)));
  if (actual !== checksum) {
    throw new ChunkyardError('CORRUPT', `${what} fails its checksum (stored ${checksum.slice(0, 16)}…, computed ${actual.slice(0, 16)}…)`);
  }
  return body;
}

