'use strict';
// GAE graph at horizons other than the one it was exported with: an estimator exported with a
// fixed T runs at other T silently wrong (or fails), so this is the check that T is dynamic.

const test = require('node:test');
const assert = require('node:assert/strict');
const { golden, open, feeds, compareOutputs, checkSignature } = require('../runner');

for (const role of ['gae_onnx', 'gae_onnx_float64']) test(`GAE (${role}): golden horizons differ from the export horizon and match`, async (t) => {
  const { entry, golden: g } = golden(role);
  const exportT = entry.export_horizon;
  assert.ok(Number.isInteger(exportT), 'manifest must record the GAE export horizon ("export_horizon")');
  const session = await open(g.artifact);
  const errors = [];
  const stats = { tensors: 0, maxAbsErr: 0 };
  const horizons = [];
  for (const c of g.cases) {
    const reward = c.inputs.next_reward;
    assert.ok(reward, `${c.name}: no next_reward input`);
    // [*batch, T, 1]: the time axis is -2.
    horizons.push(reward.shape[reward.shape.length - 2]);
    errors.push(...checkSignature(session, g, Object.keys(c.inputs), Object.keys(c.outputs)).map((m) => `${c.name}: ${m}`));
    const results = await session.run(feeds(c.inputs));
    errors.push(...compareOutputs(c.name, results, c.outputs, g, stats));
  }
  assert.ok(horizons.some((T) => T !== exportT), `every golden horizon (${horizons}) equals the export horizon ${exportT}`);
  t.diagnostic(`${stats.tensors} tensors compared, max abs err ${stats.maxAbsErr.toExponential(2)}; exported at T=${exportT}; checked at T=${horizons.join(', ')}; rtol=${g.rtol} atol=${g.atol}`);
  assert.deepEqual(errors, [], errors.join('\n'));
});
