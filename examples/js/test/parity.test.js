// The host's first iterations against rlexport's ONNX engine: given the engine's env reset
// states, sampling noise and minibatch permutations (examples/js/make_parity.py), the JS host
// must collect the same rollout and end each iteration with the same parameters and Adam state.
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import ort from 'onnxruntime-node';
import { loadBundle } from '../src/bundle.js';
import { CartPole } from '../src/cartpole.js';
import { Host } from '../src/host.js';
import { nodeIO } from '../src/node-io.js';
import { readGoldenIndex, readTensorMap } from '../src/tensors.js';
import { maxAbsDiff, mismatch, PARITY_DIR } from './helpers.js';

async function loadTrace() {
  const dir = path.join(PARITY_DIR, 'engine');
  const index = await readGoldenIndex(nodeIO, dir);
  const cases = {};
  for (const c of index.cases) {
    cases[c.name] = { inputs: await readTensorMap(nodeIO, dir, c.inputs), outputs: await readTensorMap(nodeIO, dir, c.outputs) };
  }
  return { index, initial: await readTensorMap(nodeIO, dir, index.initial_state), cases };
}

/** A CartPole whose resets replay the recorded float64 states. */
function scriptedCartPole(states) {
  const env = new CartPole();
  let next = 0;
  env.reset = () => {
    if (next >= states.shape[0]) throw new Error('more resets than the engine made');
    return env.setState(states.data.subarray(4 * next, 4 * ++next), 0);
  };
  return env;
}

test('JS host reproduces the ONNX engine: rollouts, advantages and the state after each iteration', async () => {
  const bundle = await loadBundle(nodeIO, path.join(PARITY_DIR, 'bundle'));
  const trace = await loadTrace();
  const { rtol, atol } = trace.index;
  for (const [name, t] of Object.entries(trace.initial)) {
    assert.equal(mismatch(`initial ${name}`, bundle.state[name].data, t.data, 0, 0), null);
  }
  const iterations = Object.keys(trace.cases).filter((k) => k.startsWith('iteration')).sort();
  let noise = null;
  let perms = null;
  const sources = {
    noise: (n) => { const row = noise.next(); assert.equal(row.length, n); return row; },
    permutation: (n) => { const p = perms.next(); assert.equal(p.length, n); return p; },
  };
  function rows(t, Ctor) {
    const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
    let i = 0;
    return { next: () => Ctor.from(t.data.subarray(width * i, width * ++i), Number) };
  }
  const host = await Host.create({ ort, bundle, sources, makeEnv: (i) => scriptedCartPole(trace.cases.resets.inputs[`resets.${i}`]) });
  const report = [];
  for (const it of iterations) {
    const { inputs, outputs } = trace.cases[it];
    noise = rows(inputs.noise, Float32Array);
    perms = rows(inputs.permutations, Int32Array);
    await host.collect();
    for (const key of Object.keys(host.buf)) {
      const exp = outputs[`rollout.${key}`];
      assert.equal(mismatch(`${it} rollout.${key}`, host.buf[key], exp.data, rtol, atol), null);
    }
    const adv = await host.advantages();
    assert.equal(mismatch(`${it} advantage`, adv.advantage, outputs.advantage.data, rtol, atol), null);
    assert.equal(mismatch(`${it} value_target`, adv.value_target, outputs.value_target.data, rtol, atol), null);
    await host.learn();
    let worst = 0;
    for (const [key, exp] of Object.entries(outputs)) {
      if (!key.startsWith('state.')) continue;
      const name = key.slice('state.'.length);
      assert.ok(name in host.state, `host has no state ${name}`);
      assert.equal(mismatch(`${it} ${name}`, host.state[name].data, exp.data, rtol, atol), null);
      if (name.startsWith('param.')) worst = Math.max(worst, maxAbsDiff(host.state[name].data, exp.data));
    }
    // the parameters really moved (the comparison is not between two untouched copies)
    const name = Object.keys(trace.initial).find((k) => k.startsWith('param.'));
    assert.ok(maxAbsDiff(host.state[name].data, trace.initial[name].data) > 1e-6, `${it}: ${name} did not change`);
    report.push(`${it}: max |param - engine| = ${worst.toExponential(2)}`);
  }
  console.log(`# ${report.join('; ')}`);
});
