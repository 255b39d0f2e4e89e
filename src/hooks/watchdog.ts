/**
 * The hook watchdog (journal.ts): `node watchdog.js <state dir> <token>`, started detached
 * by a backup that ran or is about to run `pre`. It reads its standard input, a pipe from
 * the backup, until the end: the backup closes it when it is done with `post` (or the
 * kernel does, when the backup dies). Then it claims the entry if nobody ran `post` yet,
 * or if the claimer died during it, and runs `post`.
 */
import { claim, runClaimed } from './journal.js';

const [stateDir, token] = process.argv.slice(2);
if (!stateDir || !token) process.exit(2);
// A terminal's Ctrl-C, or a SIGTERM sent to the backup's group, is not for us.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.stdin.resume();
process.stdin.on('data', () => {});
const done = () => {
  void (async () => {
    const c = await claim(stateDir, token, {});
    if (c) await runClaimed(stateDir, c, 'watchdog');
    process.exit(0);
  })();
};
process.stdin.once('end', done);
process.stdin.once('error', done);
