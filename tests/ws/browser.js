// browser.js: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, for tests/integration/wstest.py. Usage: node browser.js PAGE_URL
// stdin: one JavaScript expression per line, evaluated in the page (promises awaited);
// stdout: {"ready": true} once the page loaded, then {"result": VALUE} or {"error": TEXT} per line.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqbroker-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(dir, {
      executablePath: process.env.MQ_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
    await page.goto(process.argv[2]);
    out({ ready: true });
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
      try {
        out({ result: await page.evaluate(line) });
      } catch (e) {
        out({ error: String(e.message || e) });
      }
    }
  } catch (e) {
    out({ error: String(e.message || e) });
  } finally {
    if (ctx) await ctx.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();
