// The browser host in a real headless Chromium (Debian's chromium + puppeteer-core): the page
// trains from make_parity.py's bundle (a 50 000-step schedule) and must clearly learn; the
// screenshot of the page at the end is written beside the bundle (browser-training.png).
//   node --test examples/web/browser.test.mjs      (examples/web/ensure-chromium.sh first)
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import { statSync } from 'node:fs';
import { LEARN_BUNDLE } from '../js/test/helpers.js';
import { trainInBrowser } from './run-browser.mjs';

test('PPO from the bundle learns CartPole in headless Chromium (onnxruntime-web, wasm)', { timeout: 1_800_000 }, async () => {
  const screenshot = path.join(path.dirname(LEARN_BUNDLE), 'browser-training.png');
  const { result } = await trainInBrowser(LEARN_BUNDLE, { seed: 1, screenshot, timeoutSeconds: 1700, log: (m) => console.log(`# ${m}`) });
  console.log(`# ${result.step} steps: mean return ${Number(result.meanReturn).toFixed(1)}, ${Number(result.stepsPerSecond).toFixed(0)} steps/s; screenshot ${screenshot}`);
  assert.ok(statSync(screenshot).size > 1000, 'no screenshot');
  // a random policy lasts ~22 steps; the Node test asserts the same bound
  assert.ok(result.meanReturn >= 150, `mean return ${result.meanReturn} after ${result.step} steps`);
});
