// Train in a real headless Chromium: Debian's chromium driven by puppeteer-core (no browser
// download), the page examples/web/index.html served on 127.0.0.1.
//   node examples/web/run-browser.mjs BUNDLE_DIR [--seed S] [--steps N] [--screenshot FILE.png] [--timeout SECONDS]
// Last line: "browser: mean return R (last 20 episodes) after N steps, S steps/s".
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
// puppeteer-core is a package of examples/js (one package.json for the JS host and its drivers)
import puppeteer from '../js/node_modules/puppeteer-core/lib/puppeteer/puppeteer-core.js';
import { serve } from './serve.mjs';

export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch { /* next */ }
  }
  throw new Error("no chromium found: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM=/path/to/chrome");
}

/** Run the page to the end; returns {result, screenshot path} (throws on a page error). */
export async function trainInBrowser(bundleDir, { seed = 1, steps = null, screenshot = null, timeoutSeconds = 3600, log = console.error } = {}) {
  const server = await serve(bundleDir);
  const browser = await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1120, height: 340 });
    page.on('pageerror', (err) => log(`page error: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') log(`console: ${msg.text()}`); });
    const query = new URLSearchParams({ bundle: '/bundle', seed: String(seed), ...(steps ? { steps: String(steps) } : {}) });
    await page.goto(`${server.url}/web/index.html?${query}`);
    const t0 = Date.now();
    let lastLog = 0;
    for (;;) {
      const s = await page.evaluate(() => window.training && { ...window.training, curve: undefined });
      if (s && s.error) throw new Error(`page: ${s.error}`);
      if (s && s.done) {
        if (screenshot) await page.screenshot({ path: screenshot });
        return { result: s, screenshot };
      }
      if ((Date.now() - t0) / 1000 > timeoutSeconds) throw new Error(`training did not finish within ${timeoutSeconds} s`);
      if (s && Date.now() - lastLog > 15000) {
        lastLog = Date.now();
        log(`step ${s.step}: mean return ${Number(s.meanReturn).toFixed(1)}, ${Number(s.stepsPerSecond).toFixed(0)} steps/s`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const opts = { seed: 1, steps: null, screenshot: null, timeoutSeconds: 3600 };
  let dir = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seed') opts.seed = Number(argv[++i]);
    else if (a === '--steps') opts.steps = Number(argv[++i]);
    else if (a === '--screenshot') opts.screenshot = argv[++i];
    else if (a === '--timeout') opts.timeoutSeconds = Number(argv[++i]);
    else if (!a.startsWith('--') && dir === null) dir = a;
    else { console.error(`error: unexpected argument ${a}`); process.exit(2); }
  }
  if (!dir) { console.error('usage: run-browser.mjs BUNDLE_DIR [--seed S] [--steps N] [--screenshot FILE.png] [--timeout SECONDS]'); process.exit(2); }
  const { result, screenshot } = await trainInBrowser(dir, opts);
  if (screenshot) console.error(`screenshot: ${screenshot}`);
  console.log(`browser: mean return ${Number(result.meanReturn).toFixed(1)} (last 20 episodes) after ${result.step} steps, ${Number(result.stepsPerSecond).toFixed(0)} steps/s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => { console.error(`error: ${err.message}`); process.exit(1); });
}
