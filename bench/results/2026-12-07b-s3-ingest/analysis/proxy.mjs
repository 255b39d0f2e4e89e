import { createServer, request, Agent } from 'node:http';
const target = new URL(process.env.TARGET);
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const t0 = Date.now(); const log = [];
const srv = createServer((req, res) => {
  const start = Date.now() - t0; const len = Number(req.headers['content-length'] ?? 0);
  const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers); r.pipe(res);
    r.on('end', () => log.push([start, Date.now() - t0, req.method, len, r.statusCode, req.url.replace(/\?.*/, '').split('/').slice(2, 4).join('/')]));
  });
  up.on('error', () => res.destroy()); req.pipe(up);
});
srv.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { console.log(JSON.stringify(log)); process.exit(0); });
