/**
 * Who may do what, over real sockets: the full token matrix on every route, and hostile
 * target names, which are refused (400) before anything is stored.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { globToRegExp, parseTokens, TokenTable } from '../../src/daemon/auth.js';
import { prng } from '../support/data.js';
import { auth, call, raw, startDaemon, statusOf, storeContents, T, type InProcess } from './support.js';

describe('tokens file and globs', () => {
  test('globs: * is any run, ? one character, everything else literal', () => {
    assert.ok(globToRegExp('db-*').test('db-1'));
    assert.ok(globToRegExp('db-*').test('db-'));
    assert.ok(!globToRegExp('db-*').test('xdb-1'));
    assert.ok(globToRegExp('db-?').test('db-1'));
    assert.ok(!globToRegExp('db-?').test('db-10'));
    assert.ok(globToRegExp('a.b').test('a.b'));
    assert.ok(!globToRegExp('a.b').test('axb'), '. is literal');
    assert.ok(!globToRegExp('a+').test('aa'), '+ is literal');
    assert.ok(globToRegExp('*').test('anything'));
  });

  test('a malformed tokens file is refused with a message naming the entry', () => {
    assert.throws(() => parseTokens({}), /must be a JSON array/);
    assert.throws(() => parseTokens([{ token: 'short', targets: ['*'] }]), /\[0\]\.token/);
    assert.throws(() => parseTokens([{ token: 'has a space in', targets: ['*'] }]), /\[0\]\.token/);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: '*' }]), /\[0\]\.targets/);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'], write: 'yes' }]), /\[0\]\.write/);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'] }, { token: 'abcdefgh', targets: ['a'] }]), /\[1\]\.token: appears more than once/);
    assert.deepEqual(parseTokens([{ token: 'abcdefgh', targets: ['a*'] }]), [{ token: 'abcdefgh', targets: ['a*'], access: 'read' }], 'read-only by default');
  });

  test('access levels: read, append, write; the older "write": true|false still means write / read', () => {
    const parsed = parseTokens([
      { token: 'token-aaa', targets: ['*'], write: true },
      { token: 'token-bbb', targets: ['*'], write: false },
      { token: 'token-ccc', targets: ['*'], access: 'append', comment: 'the backup client of host c' },
      { token: 'token-ddd', targets: ['*'], access: 'write' },
      { token: 'token-eee', targets: ['*'], access: 'read' },
    ]);
    assert.deepEqual(parsed.map((e) => e.access), ['write', 'read', 'append', 'write', 'read']);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'], access: 'delete' }]), /\[0\]\.access: must be one of read, append, write/);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'], access: 'append', write: true }]), /\[0\]: give "access" or the older "write", not both/);
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'], acess: 'read' }]), /\[0\]\.acess: unknown field/);
    const table = new TokenTable(parsed);
    const append = table.authorize('Bearer token-ccc')!;
    assert.ok(append.may('read', 'x') && append.may('upload', 'x') && !append.may('delete', 'x'));
    const write = table.authorize('Bearer token-aaa')!;
    assert.ok(write.may('read', 'x') && write.may('upload', 'x') && write.may('delete', 'x'));
    const read = table.authorize('Bearer token-bbb')!;
    assert.ok(read.may('read', 'x') && !read.may('upload', 'x') && !read.may('delete', 'x'));
  });

  test('quotas: bytes or sizes with units; only on tokens that can store', () => {
    const q = (quota: unknown) => parseTokens([{ token: 'abcdefgh', targets: ['*'], access: 'append', quota }])[0]!.quota;
    assert.equal(q(1000), 1000);
    assert.equal(q('500MB'), 500e6);
    assert.equal(q('20GiB'), 20 * 2 ** 30);
    assert.equal(q('1.5T'), 1.5e12);
    assert.equal(q('64 kib'), 65536);
    assert.equal(q('0'), 0);
    for (const bad of [-1, 1.5, '12 parsecs', '', 'GiB', true, null, 2 ** 60]) assert.throws(() => q(bad), /\[0\]\.quota: must be a whole number of bytes/, JSON.stringify(bad));
    assert.throws(() => parseTokens([{ token: 'abcdefgh', targets: ['*'], quota: 100 }]), /a read-only token stores nothing/);
  });

  test('HTTP Basic (the status page): the password is the token, the user name is ignored', () => {
    const table = new TokenTable([{ token: 'abcdefgh', targets: ['x'], access: 'read' }]);
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    assert.equal(table.authorizeBasic(basic('anyone:abcdefgh'))?.index, 0);
    assert.equal(table.authorizeBasic(basic(':abcdefgh'))?.index, 0);
    assert.equal(table.authorizeBasic(basic('abcdefgh')), undefined, 'no colon: no password');
    assert.equal(table.authorizeBasic(basic('abcdefgh:')), undefined, 'the token as user name is not a password');
    assert.equal(table.authorizeBasic(basic('u:abcdefgi')), undefined);
    assert.equal(table.authorizeBasic('Bearer abcdefgh'), undefined);
    assert.equal(table.authorize(basic('u:abcdefgh')), undefined, 'the API takes Bearer only');
  });

  test('Authorization: only "Bearer <token>" with a known token grants anything', () => {
    const table = new TokenTable([{ token: 'abcdefgh', targets: ['x'], access: 'write' }]);
    assert.equal(table.authorize(undefined), undefined);
    assert.equal(table.authorize('abcdefgh'), undefined);
    assert.equal(table.authorize('Basic abcdefgh'), undefined);
    assert.equal(table.authorize('Bearer'), undefined);
    assert.equal(table.authorize('Bearer abcdefgh extra'), undefined);
    assert.equal(table.authorize('Bearer abcdefgi'), undefined);
    assert.equal(table.authorize('Bearer abcdefg'), undefined, 'a prefix is not the token');
    const g = table.authorize('bearer  abcdefgh');
    assert.ok(g, 'the scheme is case-insensitive');
    assert.ok(g.may('upload', 'x') && g.may('delete', 'x') && !g.canRead('y'));
  });
});

describe('the auth matrix on every route', () => {
  let d: InProcess;
  let dbSnap: string;
  let mailSnap: string;
  const body = prng(5, 300_000);

  before(async () => {
    d = await startDaemon();
    dbSnap = (await d.store.backup(Readable.from([body]), { target: 'db-1' })).id;
    mailSnap = (await d.store.backup(Readable.from([body]), { target: 'mail' })).id;
  });
  after(() => d.stop());

  type Case = { route: string; method: string; path: () => string; write: boolean; target: string; body?: boolean };
  const routes: Case[] = [
    { route: 'PUT snapshots', method: 'PUT', path: () => '/v1/targets/db-1/snapshots', write: true, target: 'db-1', body: true },
    { route: 'GET snapshots', method: 'GET', path: () => '/v1/targets/db-1/snapshots', write: false, target: 'db-1' },
    { route: 'HEAD snapshots', method: 'HEAD', path: () => '/v1/targets/db-1/snapshots', write: false, target: 'db-1' },
    { route: 'GET latest', method: 'GET', path: () => '/v1/targets/db-1/latest', write: false, target: 'db-1' },
    { route: 'HEAD latest', method: 'HEAD', path: () => '/v1/targets/db-1/latest', write: false, target: 'db-1' },
    { route: 'GET id', method: 'GET', path: () => `/v1/snapshots/${dbSnap}`, write: false, target: 'db-1' },
    { route: 'HEAD id', method: 'HEAD', path: () => `/v1/snapshots/${dbSnap}`, write: false, target: 'db-1' },
    { route: 'PUT other target', method: 'PUT', path: () => '/v1/targets/mail/snapshots', write: true, target: 'mail', body: true },
    { route: 'GET other target', method: 'GET', path: () => '/v1/targets/mail/latest', write: false, target: 'mail' },
    { route: 'GET other id', method: 'GET', path: () => `/v1/snapshots/${mailSnap}`, write: false, target: 'mail' },
    { route: 'DELETE other id', method: 'DELETE', path: () => `/v1/snapshots/${mailSnap}`, write: true, target: 'mail' },
  ];
  const tokens: { name: string; headers: Record<string, string>; can: (c: Case) => number }[] = [
    { name: 'no header', headers: {}, can: () => 401 },
    { name: 'Basic scheme', headers: { Authorization: `Basic ${Buffer.from('u:' + T.writer).toString('base64')}` }, can: () => 401 },
    { name: 'Bearer without token', headers: { Authorization: 'Bearer' }, can: () => 401 },
    { name: 'token without scheme', headers: { Authorization: T.writer }, can: () => 401 },
    { name: 'two tokens', headers: { Authorization: `Bearer ${T.writer} ${T.writer}` }, can: () => 401 },
    { name: 'unknown token', headers: auth(T.unknown), can: () => 401 },
    { name: 'reader (*, read-only)', headers: auth(T.reader), can: (c) => (c.write ? 403 : 200) },
    { name: 'writer for db-*', headers: auth(T.dbWriter), can: (c) => (c.target.startsWith('db-') ? (c.method === 'PUT' ? 201 : 200) : 403) },
    { name: 'reader for db-? (db-1 only)', headers: auth(T.dbReader), can: (c) => (c.target === 'db-1' && !c.write ? 200 : 403) },
    { name: 'append-only for *', headers: auth(T.appender), can: (c) => (c.method === 'DELETE' ? 403 : c.method === 'PUT' ? 201 : 200) },
    { name: 'writer for *', headers: auth(T.writer), can: (c) => (c.method === 'PUT' ? 201 : 200) },
  ];

  for (const tok of tokens) {
    test(tok.name, async () => {
      for (const c of routes) {
        const before = await storeContents(d.storePath);
        const a = await call(d.url, c.method, c.path(), { headers: tok.headers, body: c.body ? body : undefined });
        const want = tok.can(c);
        assert.equal(a.status, want, `${c.route} with ${tok.name}: ${a.body.toString()}`);
        if (want === 401) {
          assert.match(String(a.headers['www-authenticate']), /^Bearer/, `${c.route}: 401 names the scheme`);
          if (c.method !== 'HEAD') assert.equal(a.json.code, 'UNAUTHORIZED');
        }
        if (want === 403 && c.method !== 'HEAD') {
          assert.equal(a.json.code, 'FORBIDDEN');
          if (c.route.includes('id')) assert.doesNotMatch(a.json.message, /mail/, 'a 403 on an id does not tell the target name');
        }
        if (want >= 400) assert.deepEqual(await storeContents(d.storePath), before, `${c.route} with ${tok.name} stored nothing`);
      }
    });
  }

  test('DELETE: the writer of the target forgets; a reader, or a writer of other targets, may not', async () => {
    const id = (await d.store.backup(Readable.from([body]), { target: 'db-2' })).id;
    assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${id}`, { headers: auth(T.reader) })).status, 403);
    assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${id}`, { headers: auth(T.dbReader) })).status, 403);
    const other = (await d.store.backup(Readable.from([body]), { target: 'web' })).id;
    assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${other}`, { headers: auth(T.dbWriter) })).status, 403);
    assert.ok((await d.store.snapshots()).some((s) => s.id === id), 'refused DELETEs removed nothing');
    const ok = await call(d.url, 'DELETE', `/v1/snapshots/${id}`, { headers: auth(T.dbWriter) });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.deepEqual(ok.json.removed.map((r: { id: string }) => r.id), [id]);
    assert.ok(!(await d.store.snapshots()).some((s) => s.id === id));
    const again = await call(d.url, 'DELETE', `/v1/snapshots/${id}`, { headers: auth(T.dbWriter) });
    assert.equal(again.status, 404);
    assert.equal(again.json.code, 'SNAPSHOT_NOT_FOUND');
  });

  test('an append-only token backs up, lists and restores, but DELETE is 403 FORBIDDEN and removes nothing', async () => {
    const data = prng(77, 200_000);
    const put = await call(d.url, 'PUT', '/v1/targets/append-1/snapshots', { headers: auth(T.appender), body: data });
    assert.equal(put.status, 201, put.body.toString());
    const id = put.json.id as string;
    const list = await call(d.url, 'GET', '/v1/targets/append-1/snapshots', { headers: auth(T.appender) });
    assert.deepEqual(list.json.map((s: { id: string }) => s.id), [id]);
    const got = await call(d.url, 'GET', `/v1/snapshots/${id}`, { headers: auth(T.appender) });
    assert.ok(got.body.equals(data));
    const before = await storeContents(d.storePath);
    for (const name of [id, id.slice(0, 6)]) {
      const del = await call(d.url, 'DELETE', `/v1/snapshots/${name}`, { headers: auth(T.appender) });
      assert.equal(del.status, 403);
      assert.equal(del.json.code, 'FORBIDDEN');
      assert.match(del.json.message, /append-only/);
    }
    assert.deepEqual(await storeContents(d.storePath), before, 'nothing removed');
    assert.ok((await d.store.snapshots()).some((s) => s.id === id));
    // The same snapshot, the same request, with a write token: forgotten.
    assert.equal((await call(d.url, 'DELETE', `/v1/snapshots/${id}`, { headers: auth(T.writer) })).status, 200);
  });

  test('the status page and the target list: hostile Authorization headers are 401 and name no target', async () => {
    const b64 = (x: string) => Buffer.from(x).toString('base64');
    for (const header of [undefined, 'Basic', 'Basic !!!not-base64!!!', `Basic ${b64(T.reader)}`, `Basic ${b64(`${T.reader}:`)}`, `Basic ${b64(`u:${T.reader} x`)}`, `Basic ${b64(`u:${T.unknown}`)}`, `Digest ${b64(`u:${T.reader}`)}`, `Bearer ${T.unknown}`]) {
      const before = await storeContents(d.storePath);
      for (const path of ['/', '/v1/targets']) {
        const a = await call(d.url, 'GET', path, { headers: header === undefined ? {} : { Authorization: header } });
        assert.equal(a.status, 401, `${path} with ${header}`);
        assert.equal(a.json.code, 'UNAUTHORIZED');
        assert.doesNotMatch(a.body.toString(), /db-1|mail/);
      }
      assert.deepEqual(await storeContents(d.storePath), before);
    }
    // Methods the page and the list do not have.
    for (const path of ['/', '/v1/targets']) {
      const a = await call(d.url, 'POST', path, { headers: auth(T.writer), body: Buffer.from('x') });
      assert.equal(a.status, 405);
      assert.equal(a.headers.allow, 'GET, HEAD');
    }
  });

  test('/healthz and /metrics need no token', async () => {
    assert.equal((await call(d.url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(d.url, 'GET', '/metrics')).status, 200);
  });
});

describe('hostile target names', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
  });
  after(() => d.stop());

  // As they appear in the request line (raw, so that no client library normalizes them).
  const names: [string, string][] = [
    ['..', '..'],
    ['.', '.'],
    ['...', '...'],
    ['a/b (encoded)', 'a%2Fb'],
    ['a/b (encoded, lower case)', 'a%2fb'],
    ['..%2F..', '..%2F..'],
    ['backslash', 'a%5Cb'],
    ['NUL', 'a%00b'],
    ['newline', 'a%0Ab'],
    ['escape', 'a%1Bb'],
    ['DEL', 'a%7Fb'],
    ['space', 'a%20b'],
    ['non-ASCII', 'caf%C3%A9'],
    ['overlong', 'x'.repeat(129)],
    ['empty', ''],
    ['bad percent-encoding', 'a%zz'],
    ['truncated percent-encoding', 'a%2'],
  ];

  for (const [what, segment] of names) {
    test(`${what}: 400 on every target route, nothing stored`, async () => {
      const before = await storeContents(d.storePath);
      for (const [method, suffix] of [['PUT', 'snapshots'], ['GET', 'snapshots'], ['GET', 'latest'], ['HEAD', 'latest']] as const) {
        const bodyBytes = method === 'PUT' ? 'hello' : '';
        const answer = await raw(
          d.port,
          `${method} /v1/targets/${segment}/${suffix} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.writer}\r\nContent-Length: ${bodyBytes.length}\r\nConnection: close\r\n\r\n${bodyBytes}`,
        );
        assert.equal(statusOf(answer), 400, `${method} ${suffix} ${JSON.stringify(segment)}: ${answer.slice(0, 300)}`);
        if (method !== 'HEAD') assert.match(answer, /"code":"BAD_ARGUMENT"/);
      }
      assert.deepEqual(await storeContents(d.storePath), before);
    });
  }

  test('a 128-character name is fine; one more is refused', async () => {
    const ok = await call(d.url, 'PUT', `/v1/targets/${'y'.repeat(128)}/snapshots`, { headers: auth(T.writer), body: Buffer.from('x') });
    assert.equal(ok.status, 201);
    const no = await call(d.url, 'PUT', `/v1/targets/${'y'.repeat(129)}/snapshots`, { headers: auth(T.writer), body: Buffer.from('x') });
    assert.equal(no.status, 400);
  });

  test('the token is checked before the name: a hostile name with no token is 401, with a token 400', async () => {
    assert.equal((await call(d.url, 'GET', '/v1/targets/a%2Fb/latest')).status, 401);
    assert.equal((await call(d.url, 'GET', '/v1/targets/a%2Fb/latest', { headers: auth(T.reader) })).status, 400);
  });

  test('?policy= must be a policy', async () => {
    const before = await storeContents(d.storePath);
    const a = await call(d.url, 'PUT', '/v1/targets/p/snapshots?policy=sometimes', { headers: auth(T.writer), body: Buffer.from('x') });
    assert.equal(a.status, 400);
    assert.equal(a.json.code, 'BAD_ARGUMENT');
    assert.deepEqual(await storeContents(d.storePath), before);
  });

  test('snapshot ids: not hex, or too short, is 400; unknown is 404', async () => {
    assert.equal((await call(d.url, 'GET', '/v1/snapshots/zzzz', { headers: auth(T.reader) })).status, 400);
    assert.equal((await call(d.url, 'GET', '/v1/snapshots/abc', { headers: auth(T.reader) })).status, 400);
    assert.equal(statusOf(await raw(d.port, `GET /v1/snapshots/.. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.reader}\r\nConnection: close\r\n\r\n`)), 400);
    const nf = await call(d.url, 'GET', '/v1/snapshots/0123456789abcdef', { headers: auth(T.reader) });
    assert.equal(nf.status, 404);
    assert.equal(nf.json.code, 'SNAPSHOT_NOT_FOUND');
  });
});
