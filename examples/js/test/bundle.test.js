// The bundle's act and advantage graphs in onnxruntime-node against their golden samples, and the
// loader's refusals.
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import ort from 'onnxruntime-node';
import { loadBundle } from '../src/bundle.js';
import { nodeIO } from '../src/node-io.js';
import { readGoldenIndex, readTensorMap, tensorFromBytes } from '../src/tensors.js';
import { mismatch, PARITY_DIR } from './helpers.js';

const BUNDLE = path.join(PARITY_DIR, 'bundle');

for (const role of ['act', 'advantage']) {
  test(`bundle ${role} graph matches its golden sample in onnxruntime-node`, async () => {
    const bundle = await loadBundle(nodeIO, BUNDLE);
    const goldenDir = path.join(BUNDLE, bundle.spec.graphs[role].onnx.golden);
    const index = await readGoldenIndex(nodeIO, goldenDir);
    const session = await ort.InferenceSession.create(bundle.graphs[role].bytes, { intraOpNumThreads: 1 });
    for (const c of index.cases) {
      const inputs = await readTensorMap(nodeIO, goldenDir, c.inputs);
      const outputs = await readTensorMap(nodeIO, goldenDir, c.outputs);
      const feeds = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.shape)]));
      const got = await session.run(feeds);
      for (const [name, exp] of Object.entries(outputs)) {
        const tol = c.outputs[name].tolerance || index;
        assert.deepEqual(Array.from(got[name].dims, Number), exp.shape, `${role} ${c.name} ${name}: shape`);
        assert.equal(mismatch(`${role} ${c.name} ${name}`, got[name].data, exp.data, tol.rtol, tol.atol), null);
      }
    }
  });
}

test('bundle train_step graph replays its golden steps in onnxruntime-node (state fed back)', async () => {
  const bundle = await loadBundle(nodeIO, BUNDLE);
  const goldenDir = path.join(BUNDLE, bundle.spec.graphs.train_step.onnx.golden);
  const index = await readGoldenIndex(nodeIO, goldenDir);
  const session = await ort.InferenceSession.create(bundle.graphs.train_step.bytes, { intraOpNumThreads: 1 });
  const toOrt = (t) => new ort.Tensor(t.dtype, t.data, t.shape);
  // the bundle's initial state is the golden sample's
  const initial = await readTensorMap(nodeIO, goldenDir, index.initial_state);
  let state = {};
  for (const [name, t] of Object.entries(initial)) {
    assert.equal(mismatch(`initial ${name}`, bundle.state[name].data, t.data, 0, 0), null);
    state[name] = toOrt(bundle.state[name]);
  }
  assert.ok(index.cases.length >= 2);
  for (const c of index.cases) {
    const inputs = await readTensorMap(nodeIO, goldenDir, c.inputs);
    const outputs = await readTensorMap(nodeIO, goldenDir, c.outputs);
    const got = await session.run({ ...state, ...Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, toOrt(t)])) });
    for (const [name, exp] of Object.entries(outputs)) {
      const tol = c.outputs[name].tolerance || index;
      assert.equal(mismatch(`train_step ${c.name} ${name}`, got[name].data, exp.data, tol.rtol, tol.atol), null);
    }
    state = Object.fromEntries(Object.entries(bundle.spec.state.train_step_updates).map(([input, output]) => [input, got[output]]));
  }
});

test('loadBundle refuses another format or version with a clear message', async () => {
  const io = (doc) => ({ readText: async () => JSON.stringify(doc), readBytes: async () => new Uint8Array() });
  await assert.rejects(loadBundle(io({ format: 'other', version: 1 }), 'x'), /format "other", expected "rlexport-bundle"/);
  await assert.rejects(loadBundle(io({ format: 'rlexport-bundle', version: 9 }), 'x'), /bundle version 9, this host knows version 1/);
});

test('tensorFromBytes checks dtype and size', () => {
  assert.throws(() => tensorFromBytes({ dtype: 'float32', shape: [2], file: 'a.bin' }, new Uint8Array(4)), /has 4 bytes, shape \[2\] of float32 needs 8/);
  assert.throws(() => tensorFromBytes({ dtype: 'complex64', shape: [1], file: 'a.bin' }, new Uint8Array(8)), /unsupported dtype/);
  const t = tensorFromBytes({ dtype: 'float32', shape: [1], file: 'a.bin' }, new Uint8Array(new Float32Array([1.5]).buffer));
  assert.equal(t.data[0], 1.5);
});
