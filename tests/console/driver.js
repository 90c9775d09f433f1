// driver.js: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, for tests/integration/consoletest.py: the web console
// tests drive the broker's own page with it.
//
//   node driver.js
//
// stdin: one JSON object per line, {"code": "..."}: the body of an async
// function of (page, context) run here in Node, so that a test can use all
// of Playwright (page.goto, page.fill, page.click, page.waitForSelector,
// page.screenshot...). stdout: {"ready": true} once the browser runs, then
// {"result": VALUE} or {"error": TEXT} per line.
//
// playwright-core comes from tests/ws/node_modules (ci/npm-deps installs
// it from tests/ws/package-lock.json); it downloads no browser.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require(path.join(__dirname, '..', 'ws', 'node_modules', 'playwright-core'));

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqbroker-console-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: process.env.MQ_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
    out({ ready: true });
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
      try {
        const { code } = JSON.parse(line);
        const result = await new AsyncFunction('page', 'context', code)(page, context);
        out({ result: result === undefined ? null : result });
      } catch (e) {
        out({ error: String(e.message || e) });
      }
    }
  } catch (e) {
    out({ error: String(e.message || e) });
  } finally {
    if (context) await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();
