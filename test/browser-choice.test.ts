// Which Chromium the page's tests launch (helpers/browser.ts): AGENTMESH_CHROMIUM, else a system one, else the
// build packaged in @sparticuz/chromium, which must run on a machine that has nothing but Node.js and npm.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { chooseChromium, CHROMIUM_ARGS } from './helpers/browser.js';
import { testScope } from './helpers/index.js';

const { dir } = testScope('agentmesh-browser-');

describe('the Chromium of the page tests', () => {
  test('AGENTMESH_CHROMIUM wins, and must name an executable', async () => {
    const fake = join(dir.path, 'my-chromium');
    writeFileSync(fake, '#!/bin/sh\n');
    await assert.rejects(chooseChromium({ AGENTMESH_CHROMIUM: fake }, []), /is not an executable file/);
    chmodSync(fake, 0o755);
    assert.deepEqual(await chooseChromium({ AGENTMESH_CHROMIUM: fake }, []), { path: fake, source: 'env' });
  });

  test('a system Chromium is preferred to the packaged one', async () => {
    const system = join(dir.path, 'chromium');
    writeFileSync(system, '#!/bin/sh\n', { mode: 0o755 });
    const choice = await chooseChromium({}, [join(dir.path, 'absent'), system]);
    assert.deepEqual(choice, { path: system, source: 'system' });
  });

  test('without one, the packaged Chromium is unpacked and renders a page', async () => {
    const choice = await chooseChromium({}, []);
    assert.equal(choice.source, 'packaged');
    const browser = await chromium.launch({ executablePath: choice.path, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      await page.setContent('<main><h1>AgentMesh</h1><p id="n"></p></main>');
      await page.evaluate('document.getElementById("n").textContent = String(6 * 7)');
      assert.equal(await page.textContent('#n'), '42');
      console.log(`# packaged Chromium ${browser.version()} at ${choice.path}`);
    } finally {
      await browser.close();
    }
  });
});
