/**
 * The status page at / in a real browser (Debian's chromium, driven by playwright-core),
 * and the target listing GET /v1/targets. The page is asserted on its text as a user
 * reads it, and on what the browser fetched (nothing but the page).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { prng } from '../support/data.js';
import { formatAge, formatBytes, renderStatusPage, type StatusModel } from '../../src/daemon/status-page.js';
import { auth, call, startDaemon, T, TOKENS, type InProcess } from './support.js';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const QUOTA = 'quota-token-0001';

describe('the status page in a headless browser', { skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (scripts/setup.sh installs chromium)` }, () => {
  let d: InProcess;
  let browser: Browser;
  let shots: string;

  before(async () => {
    d = await startDaemon({ tokens: [...TOKENS, { token: QUOTA, targets: ['web'], access: 'append', quota: 300_000 }] });
    const put = async (target: string, data: Buffer, token: string = T.writer, query = '') => call(d.url, 'PUT', `/v1/targets/${target}/snapshots${query}`, { headers: auth(token), body: data });
    const db = prng(1, 1 << 20);
    assert.equal((await put('db-1', db)).status, 201);
    assert.equal((await put('db-1', db)).status, 201, 'the same bytes again: all deduped');
    assert.equal((await put('mail', prng(2, 300_000), T.writer, '?policy=deferred')).status, 201);
    assert.equal((await put('web', prng(3, 100_000))).status, 201);
    // Past its quota mid-upload: a failed backup of web, after its last good one.
    const refused = await put('web', prng(4, 2 << 20), QUOTA);
    assert.equal(refused.status, 507, refused.body.toString());
    // What the refused upload wrote is unreferenced: reclaimed, as an operator would.
    await d.store.prune();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    shots = await mkdtemp(join(tmpdir(), 'chunkyard-status-'));
  });
  after(async () => {
    await browser?.close();
    await d.stop();
    await rm(shots, { recursive: true, force: true });
  });

  /** Opens / with HTTP Basic (the token as password); returns the page's text per target row, and what was fetched. */
  async function open(token: string | undefined, screenshot?: string) {
    const context = await browser.newContext({ httpCredentials: token === undefined ? undefined : { username: 'ops', password: token }, viewport: { width: 1180, height: 620 } });
    try {
      const page = await context.newPage();
      const fetched: string[] = [];
      page.on('request', (r) => fetched.push(r.url()));
      const answer = await page.goto(`${d.url}/`);
      const rows = await page.$$eval('#targets tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent!.trim())));
      const text = await page.innerText('body');
      if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
      return { status: answer!.status(), headers: answer!.headers(), rows, text, fetched };
    } finally {
      await context.close();
    }
  }

  test('a reader sees every target: last backup, age, outcome, bytes, reduction, policy; store totals; health', async () => {
    const png = process.env.CHUNKYARD_STATUS_SCREENSHOT ?? join(shots, 'status.png');
    const p = await open(T.reader, png);
    assert.equal(p.status, 200);
    assert.deepEqual(p.fetched, [`${d.url}/`], 'the page fetches nothing but itself');
    assert.match(p.headers['content-security-policy']!, /default-src 'none'/);
    const byTarget = new Map(p.rows.map((r) => [r[0], r]));
    assert.deepEqual([...byTarget.keys()], ['db-1', 'mail', 'web']);
    // target, last backup, age, outcome, snapshots, logical, stored, reduction, policy
    const [, when, age, outcome, snaps, logical, , reduction, policy] = byTarget.get('db-1')!;
    assert.match(when!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(age!, /^\d+ s$/);
    assert.equal(outcome, 'ok');
    assert.equal(snaps, '2');
    assert.equal(logical, '2.00 MiB');
    const r = Number(/^([\d.]+)×$/.exec(reduction!)?.[1]);
    assert.ok(r > 1.9 && r < 2.1, `two copies of incompressible bytes reduce about 2×: ${reduction}`);
    assert.match(policy!, /^immediate, (lz4|zstd|none)$/, 'the dedupe mode and compression of the target');
    assert.match(byTarget.get('mail')![4]!, /^1 \(1 staged\)$/);
    assert.match(byTarget.get('mail')![8]!, /^immediate, /, 'the store default; ?policy=deferred was per upload');
    assert.match(byTarget.get('web')![3]!, /^failed \d+ s ago, QUOTA_EXCEEDED$/, 'the quota-refused upload came after the last good one');
    assert.match(p.text, /4\s*snapshots/);
    assert.match(p.text, /never checked/);
    assert.match(p.text, /Token #1 \(read\)/);
    const bytes = await readFile(png);
    assert.ok(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG screenshot');
  });

  test('a token sees only the targets its globs cover', async () => {
    const p = await open(T.dbReader);
    assert.equal(p.status, 200);
    assert.deepEqual(p.rows.map((r) => r[0]), ['db-1']);
    assert.doesNotMatch(p.text, /mail|web/);
  });

  test('no token, or a wrong one: 401 asking for Basic, and no target named', async () => {
    // Wrong credentials: the daemon answers 401 again, and the browser shows that answer.
    const p = await open(T.unknown);
    assert.equal(p.status, 401);
    assert.match(p.headers['www-authenticate']!, /^Basic realm="chunkyard"/);
    assert.doesNotMatch(p.text, /db-1|mail|web/);
    assert.match(p.text, /UNAUTHORIZED/);
    // None at all: a headless browser has nobody to ask for a password, and gives up.
    await assert.rejects(open(undefined), /ERR_INVALID_AUTH_CREDENTIALS/);
    const none = await call(d.url, 'GET', '/');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic realm="chunkyard"/);
    assert.equal(none.json.code, 'UNAUTHORIZED');
    const wrong = await call(d.url, 'GET', '/', { headers: { Authorization: `Basic ${Buffer.from(`ops:${T.unknown}`).toString('base64')}` } });
    assert.equal(wrong.status, 401);
    assert.doesNotMatch(wrong.body.toString(), /db-1|mail|web/);
    // The API's scheme works too; Basic on the API does not.
    assert.equal((await call(d.url, 'GET', '/', { headers: auth(T.reader) })).status, 200);
    const basic = { Authorization: `Basic ${Buffer.from(`ops:${T.reader}`).toString('base64')}` };
    assert.equal((await call(d.url, 'GET', '/v1/targets', { headers: basic })).status, 401);
  });

  test('chromium --headless --dump-dom, credentials in the URL: the same page, no script needed', async () => {
    const url = new URL(`${d.url}/`);
    url.username = 'ops';
    url.password = T.dbReader;
    const { stdout } = await run(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', url.href], { encoding: 'utf8', timeout: 60_000 });
    assert.match(stdout, /<table id="targets">/);
    assert.match(stdout, /<code>db-1<\/code>/);
    assert.doesNotMatch(stdout, /<code>(mail|web)<\/code>/);
  });
});

describe('GET /v1/targets', () => {
  let d: InProcess;
  before(async () => {
    d = await startDaemon();
    for (const [target, seed] of [['db-1', 1], ['db-22', 2], ['mail', 3], ['db-1', 4]] as const) {
      assert.equal((await call(d.url, 'PUT', `/v1/targets/${target}/snapshots`, { headers: auth(T.writer), body: prng(seed, 50_000) })).status, 201);
    }
  });
  after(() => d.stop());

  test('every target the token may read, sorted, each with its snapshots oldest first', async () => {
    const all = await call(d.url, 'GET', '/v1/targets', { headers: auth(T.reader) });
    assert.equal(all.status, 200);
    assert.deepEqual(all.json.token, { access: 'read' });
    assert.deepEqual(all.json.targets.map((t: { target: string }) => t.target), ['db-1', 'db-22', 'mail']);
    const db1 = all.json.targets[0].snapshots;
    assert.equal(db1.length, 2);
    assert.ok(db1[0].time <= db1[1].time);
    // The same entries as the target's own list, field for field.
    assert.deepEqual(db1, (await call(d.url, 'GET', '/v1/targets/db-1/snapshots', { headers: auth(T.reader) })).json);
    for (const key of ['id', 'target', 'time', 'logicalBytes', 'policy', 'chunks', 'staged', 'storedBytes', 'seconds', 'host', 'tags']) assert.ok(key in db1[0], key);
    const some = await call(d.url, 'GET', '/v1/targets', { headers: auth(T.dbReader) });
    assert.deepEqual(some.json.targets.map((t: { target: string }) => t.target), ['db-1'], 'db-? covers db-1 only');
    const none = await call(d.url, 'GET', '/v1/targets');
    assert.equal(none.status, 401);
    assert.equal(none.json.code, 'UNAUTHORIZED');
    assert.equal((await call(d.url, 'PUT', '/v1/targets', { headers: auth(T.writer) })).status, 405);
  });
});

describe('renderStatusPage', () => {
  const model = (over: Partial<StatusModel> = {}): StatusModel => ({
    now: 1_800_000_000,
    startedAt: 1_800_000_000 - 3600,
    storePath: '/srv/<store>',
    token: { index: 0, access: 'read' },
    targets: [
      { target: 'fresh', snapshots: 1, staged: 0, last: { finished: 1_800_000_000 - 600, id: 'a'.repeat(16), logicalBytes: 10 }, logicalBytes: 4096, storedBytes: 1024, policy: { dedupe: 'immediate', compression: 'zstd' } },
      { target: 'old', snapshots: 1, staged: 0, last: { finished: 1_800_000_000 - 30 * 3600, id: 'b'.repeat(16), logicalBytes: 10 }, logicalBytes: 10, storedBytes: 0, policy: { dedupe: 'deferred', compression: 'lz4' } },
    ],
    ...over,
  });

  test('outcomes: ok, late after 26 h, failed; escaping; a recorded check', () => {
    const html = renderStatusPage(model({ check: { time: 1_800_000_000 - 7200, ok: false, errors: 2, warnings: 1, readData: true } }));
    assert.match(html, /<code>fresh<\/code>.*10 min.*class="ok">ok<.*4\.00×/);
    assert.match(html, /<code>old<\/code>.*30 h.*class="late">late</);
    assert.match(html, /\/srv\/&lt;store&gt;/, 'escaped');
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /problems found.*2 errors, 1 warnings, data read/);
    assert.match(renderStatusPage(model()), /never checked/);
    assert.match(renderStatusPage(model({ token: { index: 3, access: 'append', quota: 2 * 2 ** 30, used: 2 ** 29 } })), /Token #3 \(append, quota: 512 MiB of 2\.00 GiB used\)/);
  });

  test('ages and sizes read like a person writes them', () => {
    assert.deepEqual([5, 90, 3600, 3660, 50 * 3600, 49 * 3600 + 1].map(formatAge), ['5 s', '1 min', '1 h', '1 h 1 min', '2 d 2 h', '2 d 1 h']);
    assert.deepEqual([0, 1023, 1024, 1536 * 1024, 5 * 2 ** 40].map(formatBytes), ['0 B', '1023 B', '1.00 KiB', '1.50 MiB', '5.00 TiB']);
  });
});
