/**
 * HTTP behaviour over real sockets: Range (RFC 9110 §14), HEAD, 404/405, hostile headers
 * and request lines, and one JSON log line per request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { connect } from 'node:net';
import { once } from 'node:events';
import { prng } from '../support/data.js';
import { auth, call, eventually, metric, raw, startDaemon, statusOf, storeContents, T, type InProcess } from './support.js';

/** The parts of a multipart/byteranges body: each part's Content-Range and bytes. */
function parts(body: Buffer, contentType: string): { range: string; data: Buffer }[] {
  const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(contentType);
  assert.ok(m, `multipart content type: ${contentType}`);
  const delimiter = Buffer.from(`--${m[1]}`);
  const out: { range: string; data: Buffer }[] = [];
  let pos = body.indexOf(delimiter);
  assert.ok(pos >= 0);
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    const head = body.subarray(pos, headEnd).toString('latin1');
    const range = /Content-Range: (.*)/i.exec(head)![1]!.trim();
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headEnd + 4);
    assert.ok(next > 0, 'each part ends with CRLF and the delimiter');
    out.push({ range, data: body.subarray(headEnd + 4, next) });
    pos = next + 2;
  }
  return out;
}

describe('Range, HEAD and conditional requests', () => {
  let d: InProcess;
  const data = prng(11, 1_500_000);
  const N = data.length;
  let id: string;
  let empty: string;
  const get = (path: string, headers: Record<string, string> = {}) => call(d.url, 'GET', path, { headers: { ...auth(T.reader), ...headers } });

  before(async () => {
    d = await startDaemon();
    id = (await d.store.backup(Readable.from([data]), { target: 'r' })).id;
    empty = (await d.store.backup(Readable.from([]), { target: 'empty' })).id;
  });
  after(() => d.stop());

  test('no Range: 200, the whole snapshot, Content-Length, Accept-Ranges, ETag', async () => {
    for (const path of [`/v1/snapshots/${id}`, '/v1/targets/r/latest', `/v1/snapshots/${id.slice(0, 6)}`]) {
      const a = await get(path);
      assert.equal(a.status, 200, path);
      assert.equal(a.headers['content-length'], String(N));
      assert.equal(a.headers['accept-ranges'], 'bytes');
      assert.equal(a.headers['etag'], `"${id}"`);
      assert.ok(a.body.equals(data), path);
    }
  });

  const satisfiable: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    [`bytes=${N - 1}-${N - 1}`, N - 1, N - 1],
    [`bytes=${N - 1}-`, N - 1, N - 1],
    ['bytes=-1', N - 1, N - 1],
    ['bytes=-1000', N - 1000, N - 1],
    [`bytes=-${N * 2}`, 0, N - 1],
    ['bytes=0-', 0, N - 1],
    [`bytes=1000-${N * 10}`, 1000, N - 1],
    ['bytes=1048570-1048580', 1048570, 1048580],
    ['BYTES=5-9', 5, 9],
    [`bytes=0-${'9'.repeat(30)}`, 0, N - 1],
    [' bytes=2-3 , ', 2, 3],
  ];
  for (const [header, first, last] of satisfiable) {
    test(`${header}: 206, Content-Range bytes ${first}-${last}/${N}`, async () => {
      const a = await get(`/v1/snapshots/${id}`, { Range: header });
      assert.equal(a.status, 206, a.body.subarray(0, 200).toString());
      assert.equal(a.headers['content-range'], `bytes ${first}-${last}/${N}`);
      assert.equal(a.headers['content-length'], String(last - first + 1));
      assert.ok(a.body.equals(data.subarray(first, last + 1)));
    });
  }

  for (const header of [`bytes=${N}-`, `bytes=${N}-${N + 10}`, `bytes=${N * 3}-`, 'bytes=-0', `bytes=${N}-,${N + 1}-`, `bytes=${'9'.repeat(30)}-`]) {
    test(`${header}: 416 with Content-Range bytes */${N}`, async () => {
      const a = await get(`/v1/snapshots/${id}`, { Range: header });
      assert.equal(a.status, 416);
      assert.equal(a.headers['content-range'], `bytes */${N}`);
      assert.equal(a.json.code, 'RANGE_NOT_SATISFIABLE');
    });
  }

  // RFC 9110 §14.2: a server MAY ignore a Range it cannot parse, and MUST ignore unknown units.
  for (const header of ['bytes=abc', 'bytes=5-2', 'bytes=', 'bytes=--1', 'bytes=1-2-3', 'items=0-1', 'bytes 0-1', 'bytes=0-1,x', 'bytes=0x10-0x20', 'bytes=1e3-2e3', 'bytes=,']) {
    test(`malformed ${JSON.stringify(header)}: ignored, 200 and the whole snapshot`, async () => {
      const a = await get(`/v1/snapshots/${id}`, { Range: header });
      assert.equal(a.status, 200);
      assert.equal(a.headers['content-range'], undefined);
      assert.ok(a.body.equals(data));
    });
  }

  test('several ranges: 206 multipart/byteranges, one part per satisfiable range, in order', async () => {
    const a = await get(`/v1/snapshots/${id}`, { Range: `bytes=0-9, 100-199,-5,${N + 10}-` });
    assert.equal(a.status, 206);
    assert.equal(a.headers['content-length'], String(a.body.length), 'Content-Length is exact');
    const got = parts(a.body, String(a.headers['content-type']));
    assert.deepEqual(got.map((p) => p.range), [`bytes 0-9/${N}`, `bytes 100-199/${N}`, `bytes ${N - 5}-${N - 1}/${N}`]);
    assert.ok(got[0]!.data.equals(data.subarray(0, 10)));
    assert.ok(got[1]!.data.equals(data.subarray(100, 200)));
    assert.ok(got[2]!.data.equals(data.subarray(N - 5)));
  });

  test('several ranges of which one is satisfiable: a plain 206', async () => {
    const a = await get(`/v1/snapshots/${id}`, { Range: `bytes=${N + 5}-,7-8` });
    assert.equal(a.status, 206);
    assert.equal(a.headers['content-range'], `bytes 7-8/${N}`);
    assert.ok(a.body.equals(data.subarray(7, 9)));
  });

  test('too many ranges: 416 (RFC 9110 §15.5.17), nothing read', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',');
    const a = await get(`/v1/snapshots/${id}`, { Range: `bytes=${many}` });
    assert.equal(a.status, 416);
  });

  test('If-Range: the snapshot ETag keeps the Range, anything else gets the whole snapshot', async () => {
    const same = await get(`/v1/snapshots/${id}`, { Range: 'bytes=0-3', 'If-Range': `"${id}"` });
    assert.equal(same.status, 206);
    const other = await get(`/v1/snapshots/${id}`, { Range: 'bytes=0-3', 'If-Range': '"0000000000000000"' });
    assert.equal(other.status, 200);
    assert.ok(other.body.equals(data));
  });

  test('an empty snapshot: 200 and no bytes; a byte range of it is 416, a suffix range the (empty) whole', async () => {
    const whole = await get(`/v1/snapshots/${empty}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['content-length'], '0');
    assert.equal(whole.body.length, 0);
    const first = await get(`/v1/snapshots/${empty}`, { Range: 'bytes=0-0' });
    assert.equal(first.status, 416);
    assert.equal(first.headers['content-range'], 'bytes */0');
    const suffix = await get('/v1/targets/empty/latest', { Range: 'bytes=-10' });
    assert.equal(suffix.status, 200);
    assert.equal(suffix.body.length, 0);
  });

  test('HEAD: the headers of GET, no body, and Range is ignored (defined for GET only)', async () => {
    for (const path of [`/v1/snapshots/${id}`, '/v1/targets/r/latest']) {
      const a = await call(d.url, 'HEAD', path, { headers: auth(T.reader) });
      assert.equal(a.status, 200);
      assert.equal(a.headers['content-length'], String(N));
      assert.equal(a.body.length, 0);
      const r = await call(d.url, 'HEAD', path, { headers: { ...auth(T.reader), Range: 'bytes=0-0' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(N));
    }
    const h = await call(d.url, 'HEAD', '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    const list = await call(d.url, 'HEAD', '/v1/targets/r/snapshots', { headers: auth(T.reader) });
    assert.equal(list.status, 200);
    assert.equal(list.body.length, 0);
  });

  test('Range on a snapshot list is ignored', async () => {
    const a = await get('/v1/targets/r/snapshots', { Range: 'bytes=0-0' });
    assert.equal(a.status, 200);
    assert.equal(a.json.length, 1);
  });
});

describe('routes, methods and hostile requests', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon({ headersTimeout: 1 });
  });
  after(() => d.stop());

  test('unknown paths: 404 {code: NOT_FOUND}', async () => {
    // ('/' is the status page, '/v1/targets' the target list: status.test.ts.)
    for (const path of ['/v1', '/v1/targets/x', '/v1/targets/x/snapshots/extra', '/healthz/', '/v1//snapshots', '/V1/targets/x/latest', '/metrics?x=1/..']) {
      const a = await call(d.url, 'GET', path, { headers: auth(T.writer) });
      if (path.startsWith('/metrics')) {
        assert.equal(a.status, 200, 'a query is not part of the path');
        continue;
      }
      assert.equal(a.status, 404, path);
      assert.equal(a.json.code, 'NOT_FOUND', path);
    }
  });

  test('a method a route does not have: 405 with Allow', async () => {
    const cases: [string, string, string][] = [
      ['POST', '/v1/targets/x/snapshots', 'GET, HEAD, PUT'],
      ['DELETE', '/v1/targets/x/latest', 'GET, HEAD'],
      ['PUT', '/v1/snapshots/0123456789abcdef', 'DELETE, GET, HEAD'],
      ['PUT', '/healthz', 'GET, HEAD'],
      ['POST', '/metrics', 'GET, HEAD'],
      ['OPTIONS', '/v1/targets/x/snapshots', 'GET, HEAD, PUT'],
    ];
    for (const [method, path, allow] of cases) {
      const a = await call(d.url, method, path, { headers: auth(T.writer), body: method === 'GET' || method === 'OPTIONS' ? undefined : Buffer.from('x') });
      assert.equal(a.status, 405, `${method} ${path}`);
      assert.equal(a.headers['allow'], allow, `${method} ${path}`);
      assert.equal(a.json.code, 'METHOD_NOT_ALLOWED');
    }
  });

  test('absolute-form request targets are served (RFC 9112 §3.2.2)', async () => {
    const a = await raw(d.port, `GET http://localhost/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(a), 200, a);
  });

  const put = (headers: string, body = '') => `PUT /v1/targets/h/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.writer}\r\n${headers}\r\n${body}`;
  const hostile: [string, string, number][] = [
    ['a header larger than the limit', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ['very many headers', `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y\r\n`).join('')}\r\n`, 431],
    ['Content-Length not a number', put('Content-Length: abc\r\n', 'abc'), 400],
    ['negative Content-Length', put('Content-Length: -1\r\n', 'abc'), 400],
    ['two different Content-Lengths', put('Content-Length: 3\r\nContent-Length: 4\r\n', 'abcd'), 400],
    ['Transfer-Encoding chunked and Content-Length', put('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '3\r\nabc\r\n0\r\n\r\n'), 400],
    ['a Transfer-Encoding other than chunked', put('Transfer-Encoding: gzip\r\n', 'abc'), 400],
    ['a malformed chunk size', put('Transfer-Encoding: chunked\r\n', 'zz\r\nabc\r\n0\r\n\r\n'), 400],
    ['a Content-Encoding the daemon would not undo', put('Content-Encoding: gzip\r\nContent-Length: 3\r\n', 'abc'), 415],
    ['a control character in a header value', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n`, 400],
    ['a request line that is not HTTP', 'HELLO THERE\r\n\r\n', 400],
    ['an unknown method', 'BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['Expect other than 100-continue', 'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n', 417],
    ['headers that never end (headers timeout)', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 408],
  ];
  for (const [what, request, status] of hostile) {
    test(`${what}: ${status}, nothing stored, one log line`, async () => {
      const before = await storeContents(d.storePath);
      const logsBefore = d.logs().length;
      const a = await raw(d.port, request, 3000);
      assert.equal(statusOf(a), status, `${what}: ${a.slice(0, 300)}`);
      // An upload the parser broke off mid-body ends (no snapshot) a moment after the answer.
      await eventually(async () => (metric((await call(d.url, 'GET', '/metrics')).body.toString(), 'chunkyard_uploads_in_flight') === 0 ? true : undefined));
      assert.deepEqual(await storeContents(d.storePath), before);
      const lines = d.logs().slice(logsBefore).filter((l) => l.status === status);
      assert.equal(lines.length, 1, `one log line with status ${status}: ${JSON.stringify(d.logs().slice(logsBefore))}`);
    });
  }

  test('an upload with Expect: 100-continue that is refused never gets "100 Continue"', async () => {
    const a = await raw(d.port, `PUT /v1/targets/h/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.reader}\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n`);
    assert.equal(statusOf(a), 403, a);
    assert.doesNotMatch(a, /100 Continue/);
    const ok = await raw(d.port, `PUT /v1/targets/h/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.writer}\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n`, 500);
    assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n/);
  });

  test('a refused upload whose body keeps coming still gets its answer', async () => {
    // The daemon answers 401 at once; the client goes on sending 8 MiB it no longer wants.
    const body = prng(3, 8 << 20);
    const a = await call(d.url, 'PUT', '/v1/targets/h/snapshots', { headers: { 'Content-Length': String(body.length) }, body: (async function* () { for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536); })() }).catch((err: Error) => err);
    assert.ok(!(a instanceof Error), `the answer arrived: ${String(a)}`);
    assert.equal(a.status, 401);
  });
});

describe('lingering close (RFC 9112 §9.6)', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  test('a client that asked to close (Connection: close) and keeps sending after its refusal is not reset while the daemon lingers', async () => {
    // The daemon refuses at once (a read-only token) with the body unread. It must go on
    // reading and dropping what the client still sends for a while: closing at once would
    // answer the client's next bytes with a reset, which can destroy the answer before the
    // client has read it (the EPIPE that a quota test met under load).
    // allowHalfOpen: like curl, the client goes on sending after the daemon's FIN.
    const socket = connect({ port: d.port, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    let answer = '';
    let failure: Error | undefined;
    let closed = false;
    socket.on('data', (b: Buffer) => (answer += b.toString('latin1')));
    socket.on('error', (err) => (failure = err));
    socket.on('close', () => (closed = true));
    socket.write(`PUT /v1/targets/h/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.reader}\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n`);
    const block = prng(4, 64 << 10);
    // One second of body after the answer: well inside LINGER_MS.
    const until = Date.now() + 1000;
    while (Date.now() < until && !failure && !closed) {
      socket.write(block);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(failure, undefined, `no reset while the client still sends: ${String(failure)}`);
    assert.equal(closed, false, 'the connection is still open');
    assert.equal(statusOf(answer), 403, answer);
    assert.match(answer, /\r\nconnection: close\r\n/i, 'the answer says the connection closes');
    socket.end();
    await once(socket, 'close');
    assert.equal(failure, undefined);
  });
});

describe('log lines', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  test('one JSON line per request, with the fields of docs/daemon.md, and never a token', async () => {
    const before = d.logs().length;
    const put = await call(d.url, 'PUT', '/v1/targets/logged/snapshots', { headers: auth(T.writer), body: prng(1, 70_000) });
    assert.equal(put.status, 201);
    await call(d.url, 'GET', '/v1/targets/logged/latest', { headers: { ...auth(T.reader), Range: 'bytes=0-99' } });
    await call(d.url, 'GET', '/v1/targets/logged/latest', { headers: auth(T.unknown) });
    await call(d.url, 'GET', '/v1/targets/a%0Ab/latest', { headers: auth(T.reader) });
    await call(d.url, 'GET', '/nowhere');
    // The line is written when the response closes, which may be a moment after the client has it.
    const lines = await (async () => {
      for (;;) {
        const l = d.logs().slice(before);
        if (l.length >= 5) return l;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    assert.equal(lines.length, 5);
    for (const l of lines) {
      for (const k of ['time', 'method', 'path', 'route', 'status', 'bytes', 'ms']) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
      assert.ok(!JSON.stringify(l).includes('token-0001'), 'no token in the log');
    }
    assert.deepEqual(lines.map((l) => l.status), [201, 206, 401, 400, 404]);
    assert.equal(lines[0]!.target, 'logged');
    assert.equal(lines[0]!.snapshot, put.json.id);
    assert.equal(lines[0]!.bytes, 70_000);
    assert.equal(lines[0]!.token, 0, 'the token is logged by its position in the tokens file');
    assert.equal(lines[1]!.bytes, 100);
    assert.equal(lines[2]!.code, 'UNAUTHORIZED');
    assert.equal(lines[3]!.code, 'BAD_ARGUMENT');
  });
});

describe('/metrics', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  test('Prometheus text format; every name prefixed chunkyard_; the counters of the issue are there', async () => {
    const data = prng(61, 400_000);
    const a = await call(d.url, 'PUT', '/v1/targets/m/snapshots', { headers: auth(T.writer), body: data });
    const b = await call(d.url, 'PUT', '/v1/targets/m/snapshots?policy=deferred', { headers: auth(T.writer), body: data });
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    await call(d.url, 'GET', `/v1/snapshots/${a.json.id}`, { headers: auth(T.reader) });
    const m = await call(d.url, 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = m.body.toString();
    const declared = new Set<string>();
    for (const line of text.trimEnd().split('\n')) {
      if (line === '') continue; // the format ignores empty lines (prom-client puts one between families)
      const meta = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
      if (meta) {
        assert.match(meta[2]!, /^chunkyard_[a-z0-9_]+$/);
        if (meta[1] === 'TYPE') {
          assert.match(meta[3]!, /^(counter|gauge|histogram)$/);
          declared.add(meta[2]!);
        }
        continue;
      }
      const sample = /^(chunkyard_[a-z0-9_]+)(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|\+Inf)$/.exec(line);
      assert.ok(sample, `a sample line: ${JSON.stringify(line)}`);
      const family = sample[1]!.replace(/_(bucket|sum|count)$/, '');
      assert.ok(declared.has(sample[1]!) || declared.has(family), `${sample[1]} has a TYPE line before it`);
    }
    assert.equal(metric(text, 'chunkyard_ingested_bytes_total'), 2 * data.length);
    assert.equal(metric(text, 'chunkyard_restored_bytes_total'), data.length);
    assert.equal(metric(text, 'chunkyard_uploads_in_flight'), 0);
    assert.equal(metric(text, 'chunkyard_staging_bytes'), data.length);
    assert.ok(metric(text, 'chunkyard_dedupe_ratio')! >= 1);
    assert.equal(metric(text, 'chunkyard_http_requests_total{route="/v1/targets/{target}/snapshots",method="PUT",status="201"}'), 2);
    assert.equal(metric(text, 'chunkyard_http_request_duration_seconds_count{route="/v1/targets/{target}/snapshots"}'), 2);
    assert.ok(metric(text, 'chunkyard_process_resident_memory_bytes')! > 0);
    // Process metrics (prom-client's collectors) and the last good backup of each target.
    assert.ok(metric(text, 'chunkyard_process_cpu_seconds_total')! > 0);
    assert.ok(metric(text, 'chunkyard_process_open_fds')! > 0);
    assert.ok(metric(text, 'chunkyard_process_start_time_seconds')! > 0);
    const last = metric(text, 'chunkyard_target_last_success_timestamp_seconds{target="m"}')!;
    const newest = (await d.store.snapshots({ target: 'm' })).at(-1)!;
    assert.ok(Math.abs(last - (Date.parse(newest.time) / 1000 + newest.seconds)) < 0.01, `${last}: when the newest snapshot of m finished`);
    assert.ok(Math.abs(last - Date.now() / 1000) < 60);
    assert.equal(metric(text, 'chunkyard_target_last_failure_timestamp_seconds{target="m"}'), undefined, 'no upload to m failed');
  });

  test('per-target times include snapshots other processes made, and failed uploads', async () => {
    await d.store.backup(Readable.from([prng(62, 1000)]), { target: 'cli-made' });
    d.daemon.catalog.invalidate();
    const gone = await call(d.url, 'PUT', '/v1/targets/m2/snapshots?policy=nonsense', { headers: auth(T.writer), body: Buffer.alloc(10) });
    assert.equal(gone.status, 400, 'refused before it started: not a failed backup');
    // An upload that breaks mid-body (a bad chunk) is a failed backup of its target.
    const broken = await raw(d.port, `PUT /v1/targets/m2/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.writer}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`);
    assert.equal(statusOf(broken), 400);
    // The upload learns of it a moment after the answer went out.
    const text = await eventually(async () => {
      const t = (await call(d.url, 'GET', '/metrics')).body.toString();
      return metric(t, 'chunkyard_target_last_failure_timestamp_seconds{target="m2"}') === undefined ? undefined : t;
    });
    assert.ok(metric(text, 'chunkyard_target_last_success_timestamp_seconds{target="cli-made"}')! > 0);
    assert.equal(metric(text, 'chunkyard_target_last_success_timestamp_seconds{target="m2"}'), undefined);
    assert.ok(Math.abs(metric(text, 'chunkyard_target_last_failure_timestamp_seconds{target="m2"}')! - Date.now() / 1000) < 60);
  });
});
