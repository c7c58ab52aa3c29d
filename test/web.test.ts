// The page at / (src/web), driven in a real browser: playwright-core with a system Chromium or the one packaged in
// @sparticuz/chromium (helpers/browser.ts), against real nodes of
// a real three-node mesh. Every test fails on a console error, an uncaught page error or a dialog. (Code run in
// the page is given as strings: the tests are typed against Node's globals, not the DOM's.)
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RunningNode } from '../src/node.js';
import { send, sendJson } from './helpers/api.js';
import { launchChromium } from './helpers/browser.js';
import { eventually, freePort, newAgent, PROJECT_ROOT, startTestNode, tempDir } from './helpers/index.js';

const HOSTILE = '<img src=x onerror=alert(1)>';

const dir = tempDir();
// The screenshots of the README: refreshed into docs/ with AGENTMESH_SCREENSHOTS=1, else taken into the temp dir
// (a test run leaves the tracked files alone).
const SHOTS = process.env.AGENTMESH_SCREENSHOTS === '1' ? `${PROJECT_ROOT}docs/` : `${dir.path}/`;
const nodes: RunningNode[] = [];
let browser: Browser;
let s: RunningNode; // the centre
let b: RunningNode; // pulls from s
let c: RunningNode; // pulls from b, learns s from b; the node the page is served by

async function meshNode(name: string, seeds: RunningNode[]): Promise<RunningNode> {
  const port = await freePort();
  const node = await startTestNode(`${dir.path}/${name}`, {
    port: String(port),
    publicUrl: `http://127.0.0.1:${port}`,
    seeds: seeds.map((n) => n.url).join(','),
  });
  nodes.push(node);
  return node;
}

async function register(node: RunningNode, fields: Record<string, unknown>): Promise<{ id: string }> {
  const { card } = newAgent(fields);
  const res = await sendJson(node.url, '/agents', card);
  assert.equal(res.status, 201, res.text);
  return card;
}

before(async () => {
  s = await meshNode('s', []);
  b = await meshNode('b', [s]);
  c = await meshNode('c', [b]);
  await register(s, { name: 'Centre Clock', description: 'Tells the time at the centre of the mesh', tags: ['time'] });
  for (const round of [() => b.worker.runRound(), () => c.worker.runRound(), () => c.worker.runRound(), () => b.worker.runRound()]) {
    for (const report of await round()) assert.equal(report.ok, true, report.error);
  }
  for (const fields of [
    { name: 'Weather Oracle', description: 'Global weather forecasts for every city, hour by hour.', tags: ['weather', 'forecast'], skills: [{ name: 'get_weather', description: 'Current weather by city', tags: ['meteo'] }, { name: 'get_forecast' }] },
    { name: 'Harbour Pilot', description: 'Tide tables, and the weather at sea for sailors.', tags: ['maritime'], protocol: 'http', endpoint: 'https://harbour.example/api' },
    { name: 'Polyglot Translator', description: 'Translates between 40 languages.', tags: ['language'], protocol: 'mcp', endpoint: 'https://polyglot.example/mcp', skills: [{ name: 'translate', tags: ['text'] }] },
    { name: 'Ledger Keeper', description: 'Double-entry bookkeeping for small firms.', tags: ['finance'], protocol: 'grpc', endpoint: 'https://ledger.example:8443' },
    { name: HOSTILE, description: '<script>window.__pwned = true</script> onerror', tags: ['<b>bold</b>'], skills: [{ name: '"><svg onload=alert(2)>' }] },
  ]) await register(c, fields);
  const launched = await launchChromium();
  browser = launched.browser;
  console.log(`# browser: ${launched.choice.source} Chromium ${browser.version()} at ${launched.choice.path}`);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  for (const node of nodes) await node.stop();
  dir.cleanup();
});

let page: Page;
let problems: string[];

beforeEach(async () => {
  problems = [];
  page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
});

afterEach(async () => {
  await page.close();
  assert.deepEqual(problems, [], 'no console error, page error or dialog');
});

const resultNames = () => page.locator('.results h2').allTextContents();

async function waitForNames(expected: (names: string[]) => boolean, what: string): Promise<string[]> {
  let names: string[] = [];
  await eventually(async () => expected((names = await resultNames())), 15_000, what).catch((error: unknown) => {
    throw new Error(`${String(error)}; shown: ${JSON.stringify(names)}`);
  });
  return names;
}

describe('the page at /', () => {
  it('is served by the node with a CSP that forbids inline script, and the API still answers JSON', async () => {
    const res = await fetch(`${c.url}/`, { headers: { accept: 'text/html' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /(^|; )script-src 'self'(;|$)/);
    assert.match(csp, /(^|; )default-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.doesNotMatch(await res.text(), /<script>|<script [^>]*>[^<]/, 'no inline script in the page');
    const script = await send(c.url, '/web/main.js');
    assert.match(script.contentType ?? '', /^text\/javascript/);
    assert.equal((await send(c.url, '/web/..%2Fpackage.json')).status, 404);
    const api = await send(c.url, '/agents?limit=1', { headers: { accept: 'text/html' } });
    assert.match(api.contentType ?? '', /^application\/json/);
  });

  it('searches as one types: a stemmed word, a prefix, ranked with the name first', async () => {
    await page.goto(`${c.url}/`);
    await page.locator('#q').pressSequentially('forecast', { delay: 40 });
    assert.deepEqual(await waitForNames((n) => n.length === 1, 'forecast finds forecasts'), ['Weather Oracle']);
    await page.locator('#q').fill('');
    await page.locator('#q').pressSequentially('weath', { delay: 40 });
    const names = await waitForNames((n) => n.length === 2, 'weath finds weather');
    assert.deepEqual(names, ['Weather Oracle', 'Harbour Pilot'], 'a match in the name ranks above one in the description');
    assert.match((await page.locator('#result-count').textContent()) ?? '', /2 agents found/);
    assert.match(page.url(), /#\/\?q=weath$/, 'the search is in the URL');
    await page.screenshot({ path: `${SHOTS}screenshot-search.png` });
  });

  it('narrows with the protocol, tag and skill filters', async () => {
    await page.goto(`${c.url}/#/`);
    await waitForNames((n) => n.length >= 5, 'every agent, most recent first');
    await page.locator('#protocol').selectOption('mcp');
    assert.deepEqual(await waitForNames((n) => n.length === 1, 'protocol mcp'), ['Polyglot Translator']);
    await page.locator('#protocol').selectOption('');
    await page.locator('#tag').fill('maritime');
    assert.deepEqual(await waitForNames((n) => n.length === 1 && n[0] === 'Harbour Pilot', 'tag maritime'), ['Harbour Pilot']);
    await page.locator('#tag').fill('');
    await page.locator('#skill').fill('get_forecast');
    assert.deepEqual(await waitForNames((n) => n.length === 1 && n[0] === 'Weather Oracle', 'skill get_forecast'), ['Weather Oracle']);
    await page.locator('#q').fill('ledger');
    await waitForNames((n) => n.length === 0, 'q and skill together');
    assert.match((await page.locator('#result-count').textContent()) ?? '', /No agents found/);
  });

  it('opens an agent from a result and from its own URL', async () => {
    await page.goto(`${c.url}/#/?q=polyglot`);
    await waitForNames((n) => n.length === 1, 'polyglot');
    await page.locator('.results h2 a').click();
    await page.locator('h1', { hasText: 'Polyglot Translator' }).waitFor();
    const id = decodeURIComponent(new URL(page.url()).hash.slice('#/agents/'.length));
    assert.match(id, /^did:agent:[0-9a-f]{64}$/);
    const card = (await send(c.url, `/agents/${id}`)).body;
    const json = JSON.parse((await page.locator('pre.json').textContent())!);
    assert.deepEqual(json, card, 'the signed card, as JSON');
    const body = (await page.locator('main').textContent())!;
    for (const expected of [card.public_key, card.endpoint, 'translate', 'mcp', 'a client of this node']) assert.ok(body.includes(expected), expected);
    await page.screenshot({ path: `${SHOTS}screenshot-agent.png`, fullPage: true });

    const other = await browser.newPage();
    try {
      await other.goto(`${c.url}/#/agents/${encodeURIComponent(id)}`);
      await other.locator('h1', { hasText: 'Polyglot Translator' }).waitFor();
      await other.goto(`${s.url}/#/agents/${encodeURIComponent(id)}`);
      await other.locator('h1', { hasText: 'Agent not found' }).waitFor();
    } finally {
      await other.close();
    }
    await page.locator('a', { hasText: 'Back to search' }).click();
    assert.deepEqual(await waitForNames((n) => n.length === 1, 'back to the search'), ['Polyglot Translator']);
    // The agent S pulled from nowhere: B holds it from S, and B's page says so.
    const clock = ((await send(s.url, '/agents?q=clock')).body.agents as Array<{ id: string }>)[0]!;
    await page.goto(`${b.url}/#/agents/${encodeURIComponent(clock.id)}`);
    await page.locator('main', { hasText: `the peer ${s.url}` }).waitFor();
  });

  it('lists the peers of a three-node mesh, refreshed', async () => {
    await page.goto(`${c.url}/#/mesh`);
    await page.locator('#node-id', { hasText: c.store.nodeId }).waitFor();
    const rows = page.locator('table.peers tbody tr');
    await eventually(async () => (await rows.count()) === 2, 10_000, 'two peer rows');
    const text = (await rows.allTextContents()).join('\n');
    for (const expected of [b.url, s.url, b.store.nodeId, s.store.nodeId, 'seed', 'discovered']) assert.ok(text.includes(expected), expected);
    assert.match(text, /ago/);
    // A new peer appears without a reload: S learns of C when C pulls it announcing itself... on S's page.
    await page.goto(`${s.url}/#/mesh`);
    await page.locator('#node-id', { hasText: s.store.nodeId }).waitFor();
    const before = await rows.count();
    const d = await meshNode('d', [s]);
    await d.worker.runRound();
    await eventually(async () => (await rows.count()) === before + 1, 15_000, 'the announced peer shows up');
    assert.ok((await rows.allTextContents()).some((r) => r.includes(d.url) && r.includes('announced')));
    await page.goto(`${c.url}/#/mesh`);
    await eventually(async () => (await rows.count()) === 2, 10_000, 'two peer rows');
    await page.screenshot({ path: `${SHOTS}screenshot-mesh.png`, fullPage: true });
  });

  it('shows a card stored while the page is open, without a reload', async () => {
    await page.goto(`${c.url}/#/?q=zeppelin`);
    await waitForNames((n) => n.length === 0, 'nothing yet');
    await page.evaluate('window.stayed = true');
    await register(c, { name: 'Zeppelin Spotter', description: 'Watches the sky' });
    assert.deepEqual(await waitForNames((n) => n.length === 1, 'the new card appears'), ['Zeppelin Spotter']);
    // And one that reached this node through the mesh: stored at S, pulled by B, then by C.
    await register(s, { name: 'Zeppelin Relay', description: 'Came through the mesh' });
    await b.worker.runRound();
    await c.worker.runRound();
    await waitForNames((n) => n.length === 2, 'the pulled card appears');
    assert.equal(await page.evaluate('window.stayed'), true, 'no reload');
  });

  it('renders hostile card text as text: no element, no script, no dialog', async () => {
    await page.goto(`${c.url}/#/?q=onerror`);
    assert.deepEqual(await waitForNames((n) => n.length === 1, 'the hostile card'), [HOSTILE]);
    assert.equal(await page.locator('main img, main svg, main script, main b').count(), 0);
    assert.ok(((await page.locator('.results').textContent()) ?? '').includes('<script>window.__pwned = true</script>'));
    await page.locator('.results h2 a').click();
    await page.locator('h1', { hasText: HOSTILE }).waitFor();
    assert.equal(await page.locator('h1').textContent(), HOSTILE);
    assert.ok(((await page.locator('main').textContent()) ?? '').includes('"><svg onload=alert(2)>'));
    assert.equal(await page.locator('main img, main svg, main script, main b').count(), 0);
    await page.waitForTimeout(300); // a dialog would fire here (problems would record it)
    assert.equal(await page.evaluate('window.__pwned'), undefined);
  });

  it('works from the keyboard, has labels and landmarks, and fits a phone-sized screen', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${c.url}/`);
    await waitForNames((n) => n.length >= 5, 'results');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'q', 'the search box has the focus first');
    for (const label of ['Search', 'Protocol', 'Tag (exact)', 'Skill (exact name)', 'Order']) assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
    for (const role of ['banner', 'navigation', 'main', 'search'] as const) assert.ok((await page.getByRole(role).count()) >= 1, role);
    assert.equal(await page.locator('[aria-live]').first().getAttribute('id'), 'result-count');
    await page.keyboard.type('translat');
    await waitForNames((n) => n.length === 1, 'typed from the keyboard');
    // Tab from the search box through the filters to the first result, and open it with Enter.
    for (let i = 0; i < 5; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Polyglot Translator');
    await page.keyboard.press('Enter');
    await page.locator('h1', { hasText: 'Polyglot Translator' }).waitFor();
    assert.equal(await page.evaluate('document.activeElement?.tagName'), 'H1', 'the new view takes the focus');
    for (const view of ['#/', `#/agents/${encodeURIComponent((await register(c, { name: 'Narrow', description: 'x'.repeat(300) })).id)}`, '#/mesh']) {
      await page.goto(`${c.url}/${view}`);
      await page.waitForTimeout(500);
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
      assert.ok(overflow <= 0, `${view} is ${overflow} px wider than the screen`);
    }
  });
});
