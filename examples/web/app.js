// The browser host: the same library as Node (examples/js/src), onnxruntime-web (wasm, one
// thread), files fetched over HTTP. Query: ?bundle=URL&seed=S&steps=N (defaults: the server's
// /bundle, 1, the bundle's total_steps). window.training reports progress to a test driver.
import * as ort from '../js/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { loadBundle } from '../js/src/bundle.js';
import { CartPole } from '../js/src/cartpole.js';
import { Host } from '../js/src/host.js';
import { Rng } from '../js/src/rng.js';

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('../js/node_modules/onnxruntime-web/dist/', import.meta.url).href;

const fetchIO = {
  async readText(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.text();
  },
  async readBytes(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  },
};

const params = new URLSearchParams(location.search);
const status = document.getElementById('status');
window.training = { done: false, error: null, step: 0, meanReturn: NaN, stepsPerSecond: 0, curve: [] };

function drawCartPole(canvas, state, info) {
  const g = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  g.clearRect(0, 0, W, H);
  const scale = W / 4.8; // the track is x in [-2.4, 2.4]
  const groundY = H - 60;
  g.strokeStyle = '#888';
  g.beginPath(); g.moveTo(0, groundY); g.lineTo(W, groundY); g.stroke();
  const [x, , theta] = state;
  const cx = W / 2 + x * scale;
  g.fillStyle = '#345';
  g.fillRect(cx - 30, groundY - 30, 60, 30);
  const poleLen = 2 * 0.5 * scale; // the pole is twice the half-length 0.5
  g.strokeStyle = '#c84';
  g.lineWidth = 8;
  g.beginPath();
  g.moveTo(cx, groundY - 30);
  g.lineTo(cx + poleLen * Math.sin(theta), groundY - 30 - poleLen * Math.cos(theta));
  g.stroke();
  g.lineWidth = 1;
  g.fillStyle = '#222';
  g.fillText(info, 8, 16);
}

function drawCurve(canvas, points, totalSteps) {
  const g = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  const L = 40;
  const B = 24;
  g.clearRect(0, 0, W, H);
  g.strokeStyle = '#888';
  g.strokeRect(L, 8, W - L - 8, H - B - 8);
  g.fillStyle = '#222';
  for (const r of [0, 100, 200, 300, 400, 500]) {
    const y = 8 + (H - B - 8) * (1 - r / 500);
    g.fillText(String(r), 4, y + 4);
  }
  g.fillText('steps', W - 40, H - 6);
  g.fillText(`mean return (last 20 episodes) vs steps, 0..${totalSteps}`, L + 8, H - 6);
  g.strokeStyle = '#26a';
  g.lineWidth = 2;
  g.beginPath();
  points.forEach(([s, r], i) => {
    const px = L + (W - L - 8) * (s / totalSteps);
    const py = 8 + (H - B - 8) * (1 - Math.min(r, 500) / 500);
    if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
  });
  g.stroke();
  g.lineWidth = 1;
}

async function main() {
  const dir = params.get('bundle') || '/bundle';
  const seed = Number(params.get('seed') || 1);
  const bundle = await loadBundle(fetchIO, dir);
  const totalSteps = Number(params.get('steps') || bundle.spec.schedule.total_steps);
  const envRng = new Rng(seed, 1001);
  const host = await Host.create({ ort, bundle, seed, makeEnv: () => new CartPole({ rng: envRng }),
    sessionOptions: { executionProviders: ['wasm'], intraOpNumThreads: 1, interOpNumThreads: 1 } });
  const cartpole = document.getElementById('cartpole');
  const curve = document.getElementById('curve');
  const result = await host.train({
    totalSteps,
    onProgress: async (p) => {
      if (Number.isFinite(p.meanReturn)) window.training.curve.push([p.step, p.meanReturn]);
      Object.assign(window.training, { step: p.step, meanReturn: p.meanReturn, stepsPerSecond: p.stepsPerSecond, update: p.update });
      status.textContent = `update ${p.update}/${bundle.spec.schedule.num_updates}  step ${p.step}  mean return ${p.meanReturn.toFixed(1)}  ${p.episodes} episodes  ${p.stepsPerSecond.toFixed(0)} steps/s`;
      drawCartPole(cartpole, host.envs[0].state, `env 0 at step ${p.step}`);
      drawCurve(curve, window.training.curve, totalSteps);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint
    },
  });
  Object.assign(window.training, { done: true, step: result.steps, meanReturn: result.meanReturn, stepsPerSecond: result.stepsPerSecond });
  status.textContent = `done: mean return ${result.meanReturn.toFixed(1)} (last 20 episodes) after ${result.steps} steps, ${result.stepsPerSecond.toFixed(0)} steps/s`;
}

main().catch((err) => {
  window.training.error = String(err && err.stack ? err.stack : err);
  status.textContent = `error: ${err}`;
  console.error(err);
});
