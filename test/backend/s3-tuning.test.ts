/** The environment knobs of s3:// locations (location.ts s3Tuning): parsed, range-checked, BAD_ARGUMENT otherwise. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { s3Tuning } from '../../src/backend/location.js';
import { hasCode } from '../../src/errors.js';

test('CHUNKYARD_S3_ATTEMPTS, _TIMEOUT_MS, _PARTS_IN_FLIGHT, _PART_MIB, _BUFFER_MIB, _SIGN_PAYLOAD: unset means the defaults; whole numbers in range are taken', () => {
  assert.deepEqual(s3Tuning({}), { attempts: undefined, requestTimeoutMs: undefined, partsInFlight: undefined, partMiB: undefined, bufferMiB: undefined, signPayload: undefined });
  assert.deepEqual(s3Tuning({ CHUNKYARD_S3_ATTEMPTS: '12', CHUNKYARD_S3_TIMEOUT_MS: '2000', CHUNKYARD_S3_PARTS_IN_FLIGHT: '4', CHUNKYARD_S3_PART_MIB: '16', CHUNKYARD_S3_BUFFER_MIB: '0' }), { attempts: 12, requestTimeoutMs: 2000, partsInFlight: 4, partMiB: 16, bufferMiB: 0, signPayload: undefined });
  assert.equal(s3Tuning({ CHUNKYARD_S3_SIGN_PAYLOAD: '1' }).signPayload, true);
  assert.equal(s3Tuning({ CHUNKYARD_S3_SIGN_PAYLOAD: '0' }).signPayload, false);
});

test('malformed or out-of-range knobs are BAD_ARGUMENT naming the variable', () => {
  for (const [k, v] of [['CHUNKYARD_S3_ATTEMPTS', '0'], ['CHUNKYARD_S3_ATTEMPTS', '1.5'], ['CHUNKYARD_S3_TIMEOUT_MS', '-1'], ['CHUNKYARD_S3_TIMEOUT_MS', '5s'], ['CHUNKYARD_S3_PARTS_IN_FLIGHT', '65'], ['CHUNKYARD_S3_PART_MIB', '4'], ['CHUNKYARD_S3_PART_MIB', '1025'], ['CHUNKYARD_S3_PART_MIB', '8M'], ['CHUNKYARD_S3_BUFFER_MIB', '-1'], ['CHUNKYARD_S3_BUFFER_MIB', '65537'], ['CHUNKYARD_S3_SIGN_PAYLOAD', '2'], ['CHUNKYARD_S3_SIGN_PAYLOAD', 'yes']]) {
    assert.throws(() => s3Tuning({ [k!]: v }), (e) => hasCode(e, 'BAD_ARGUMENT') && (e as Error).message.includes(k!), `${k}=${v}`);
  }
});
