// The default slot's KDF alone (Argon2id m = 19 MiB, t = 2, p = 1) through an addon's
// argon2idAsync, N times in one process: median wall and CPU (user + system, all threads).
//   node bench/results/2026-12-07b-encopen/kdf.cjs ADDON.node [N] [LABEL]
const [addonPath, n = '20', label = addonPath] = process.argv.slice(2);
const a = require(require('path').resolve(addonPath));
const { performance } = require('perf_hooks');
(async () => {
  const pw = Buffer.from('bench passphrase'), salt = Buffer.alloc(16, 7);
  const W = [], C = [], S = [];
  for (let i = 0; i < Number(n); i++) {
    const t = performance.now(), c0 = process.cpuUsage();
    await a.argon2idAsync(pw, salt, 19456, 2, 1);
    const c = process.cpuUsage(c0);
    W.push(performance.now() - t); C.push((c.user + c.system) / 1000); S.push(c.system / 1000);
  }
  const med = (x) => [...x].sort((p, q) => p - q)[x.length >> 1].toFixed(1);
  console.log(`${label}: wall median ${med(W)} ms (min ${Math.min(...W).toFixed(1)}), CPU median ${med(C)} ms (of it system ${med(S)})`);
})();
