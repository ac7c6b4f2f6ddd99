'use strict';
// A whole ClipPPO update step (params + Adam state + hyper-parameters + batch -> new params,
// new state, losses) run K times in onnxruntime-node, each step's state outputs fed back as the
// next step's inputs, every output of every step checked against the golden sample.

const test = require('node:test');
const assert = require('node:assert/strict');
const { golden, open, feeds, compareOutputs, checkSignature } = require('../runner');

test('ClipPPO train step: K recorded steps match the golden sample', async (t) => {
  const { golden: g } = golden('train_step_onnx');
  assert.equal(g.kind, 'train_step');
  assert.ok(g.cases.length >= 2, `expected several recorded steps, got ${g.cases.length}`);
  const session = await open(g.artifact);

  // Contract: state inputs + per-step inputs are all graph inputs; outputs are all graph outputs.
  const stateIn = Object.keys(g.state);
  assert.deepEqual([...stateIn].sort(), Object.keys(g.initialState).sort(), '"state" and "initial_state" name different inputs');
  for (const c of g.cases) {
    const sig = checkSignature(session, g, [...stateIn, ...Object.keys(c.inputs)], Object.keys(c.outputs));
    assert.deepEqual(sig, [], `${c.name}: ${sig.join('; ')}`);
  }

  let state = feeds(g.initialState);
  const errors = [];
  const stats = { tensors: 0, maxAbsErr: 0 };
  for (const c of g.cases) {
    const results = await session.run({ ...state, ...feeds(c.inputs) });
    errors.push(...compareOutputs(c.name, results, c.outputs, g, stats));
    // Feed the graph's own state outputs (not the golden ones) back: errors would compound.
    const next = {};
    for (const [inName, outName] of Object.entries(g.state)) {
      assert.ok(results[outName], `state output ${outName} missing after ${c.name}`);
      next[inName] = results[outName];
    }
    state = next;
  }
  t.diagnostic(`${stats.tensors} tensors compared, max abs err ${stats.maxAbsErr.toExponential(2)}; ${g.cases.length} steps, rtol=${g.rtol} atol=${g.atol}, ${Object.keys(g.state).length} state tensors`);
  assert.deepEqual(errors, [], errors.join('\n'));
});

test('ClipPPO train step through trainer.js (X.json-driven loop) matches the golden sample', async () => {
  const { TrainStep } = require('../trainer');
  const { toOrt, compareOutputs: compare } = require('../runner');
  const { golden: g } = golden('train_step_onnx');
  const initial = Object.fromEntries(Object.entries(g.initialState).map(([k, v]) => [k, toOrt(v)]));
  const trainer = await TrainStep.load(g.artifact, initial);
  const errors = [];
  for (const c of g.cases) {
    // The golden steps change hp.lr (a schedule); the other hyper-parameters are the defaults.
    const batch = {};
    for (const [name, t] of Object.entries(c.inputs)) {
      if (name.startsWith('hp.')) trainer.setHyperparam(name, t.data[0]);
      else batch[name] = toOrt(t);
    }
    errors.push(...compare(c.name, await trainer.step(batch), c.outputs, g));
  }
  assert.deepEqual(errors, [], errors.join('\n'));
});
