import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map(n => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas; let total = 0;
for (let i = 0; i < p.samples.length; i++) { const n = byId.get(p.samples[i]); const d = dt[i] ?? 0; total += d; self.set(n, (self.get(n) ?? 0) + d); }
const fn = new Map(), file = new Map();
const cat = (u) => u.includes('@smithy') || u.includes('@aws-sdk') || u.includes('aws-sdk.cjs') ? 'sdk' : u.startsWith('node:') ? u.split('/')[0] + ':' + u : u === '' ? '(native/gc/idle)' : 'chunkyard:' + u.split('/').slice(-2).join('/');
for (const [n, d] of self) { const cf = n.callFrame; const k = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-1)[0]}:${cf.lineNumber}`; fn.set(k, (fn.get(k) ?? 0) + d); const c = cat(cf.url); file.set(c, (file.get(c) ?? 0) + d); }
const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([a, b]) => `${(b / 1e3).toFixed(0).padStart(6)} ms ${(100 * b / total).toFixed(1).padStart(5)}%  ${a}`).join('\n');
console.log('total', (total / 1e6).toFixed(2), 's'); console.log(top(file, 25)); console.log('---'); console.log(top(fn, 40));
