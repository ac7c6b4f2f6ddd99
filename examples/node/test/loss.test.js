'use strict';
// A forward loss graph (ClipPPO) in onnxruntime-node against its golden sample.

const test = require('node:test');
const assert = require('node:assert/strict');
const { golden, open, feeds, compareOutputs, checkSignature } = require('../runner');

test('ClipPPO loss: every golden case matches', async (t) => {
  const { golden: g } = golden('loss_onnx');
  assert.equal(g.kind, 'forward');
  assert.ok(g.cases.length >= 1);
  const session = await open(g.artifact);
  const errors = [];
  const stats = { tensors: 0, maxAbsErr: 0 };
  for (const c of g.cases) {
    errors.push(...checkSignature(session, g, Object.keys(c.inputs), Object.keys(c.outputs)).map((m) => `${c.name}: ${m}`));
    const results = await session.run(feeds(c.inputs));
    errors.push(...compareOutputs(c.name, results, c.outputs, g, stats));
  }
  t.diagnostic(`${stats.tensors} tensors compared, max abs err ${stats.maxAbsErr.toExponential(2)}; ${g.cases.length} cases (${g.cases.map((c) => c.name).join(', ')}), rtol=${g.rtol} atol=${g.atol}`);
  assert.deepEqual(errors, [], errors.join('\n'));
});
