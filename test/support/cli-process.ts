/**
 * Runs bin/chunkyard as a child process, as a user would, without the secrets and store of the
 * test's own environment (CHUNKYARD_PASSWORD…, CHUNKYARD_STORE): only `env` adds them.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const CHUNKYARD_BIN = fileURLToPath(new URL('../../../bin/chunkyard', import.meta.url));

const CLEARED = ['CHUNKYARD_PASSWORD', 'CHUNKYARD_PASSWORD_FILE', 'CHUNKYARD_PASSWORD_COMMAND', 'CHUNKYARD_KEY_FILE', 'CHUNKYARD_STORE', 'CHUNKYARD_KDF'];

export async function runChunkyard(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CLEARED) delete base[k];
  const proc = spawn(process.execPath, [CHUNKYARD_BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [status] = (await once(proc, 'exit')) as [number | null];
  return { status, stdout: out, stderr: err };
}
