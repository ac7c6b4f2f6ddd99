// A short training run from a bundle (make_parity.py's: a 50 000-step schedule): the mean return of the last 20 episodes must clearly beat the first 20 episodes'
// (a random CartPole policy lasts about 22 steps).
import assert from 'node:assert/strict';
import test from 'node:test';
import ort from 'onnxruntime-node';
import { loadBundle } from '../src/bundle.js';
import { CartPole } from '../src/cartpole.js';
import { Host } from '../src/host.js';
import { nodeIO } from '../src/node-io.js';
import { Rng } from '../src/rng.js';
import { LEARN_BUNDLE } from './helpers.js';

test('PPO from the bundle learns CartPole in Node', { timeout: 600_000 }, async () => {
  const bundle = await loadBundle(nodeIO, LEARN_BUNDLE);
  const envRng = new Rng(1, 1001);
  const host = await Host.create({ ort, bundle, seed: 1, makeEnv: () => new CartPole({ rng: envRng }) });
  const returns = [];
  const result = await host.train({ onEpisode: (e) => returns.push(e.return) });
  const first = returns.slice(0, 20).reduce((a, b) => a + b, 0) / 20;
  console.log(`# ${result.steps} steps: first 20 episodes ${first.toFixed(1)}, last 20 ${result.meanReturn.toFixed(1)}, ${result.stepsPerSecond.toFixed(0)} steps/s`);
  assert.equal(result.steps, bundle.spec.schedule.num_updates * bundle.spec.rollout.batch_size);
  assert.ok(result.meanReturn >= 150 && result.meanReturn >= 4 * first, `mean return ${result.meanReturn} after ${result.steps} steps (first episodes ${first})`);
});
