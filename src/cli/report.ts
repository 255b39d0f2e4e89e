/** Output helpers of the maintenance commands (check, repair, prune). */
import type { Problem } from '../maintenance/problems.js';

/** One line per problem: "CODE (snapshot S, pack P, offset O): message". */
export function formatProblem(p: Problem): string {
  const where = [p.snapshot && `snapshot ${p.snapshot}`, p.pack && `pack ${p.pack}`, p.offset !== undefined && `offset ${p.offset}`].filter(Boolean).join(', ');
  return `${p.code}${where ? ` (${where})` : ''}: ${p.message}\n`;
}
