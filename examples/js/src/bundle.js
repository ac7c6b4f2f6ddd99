// Load an rlexport training bundle (docs/bundle.md) through an `io` object, so that the same code
// runs in Node (files) and in the browser (fetch):
//   io.readText(path) -> Promise<string>,  io.readBytes(path) -> Promise<Uint8Array>
// Paths are joined with '/'.

import { readGoldenIndex, readTensorMap } from './tensors.js';

export const BUNDLE_FORMAT = 'rlexport-bundle';
export const BUNDLE_VERSION = 1;

/** The strict-JSON encoding of non-finite numbers in bundle.json and X.json ("inf", "-inf", "nan"). */
export function jsonNumber(v) {
  if (typeof v === 'number') return v;
  if (v === 'inf' || v === 'Infinity') return Infinity;
  if (v === '-inf' || v === '-Infinity') return -Infinity;
  if (v === 'nan' || v === 'NaN') return NaN;
  throw new Error(`expected a number, got ${JSON.stringify(v)}`);
}

/**
 * {dir, spec (bundle.json), graphs: {role: {meta (X.json), bytes (the .onnx), params}}, state:
 * {name: {dtype, shape, data}}}. Only the ONNX form of each graph is read.
 */
export async function loadBundle(io, dir) {
  const spec = JSON.parse(await io.readText(`${dir}/bundle.json`));
  if (spec.format !== BUNDLE_FORMAT) throw new Error(`${dir}/bundle.json: format ${JSON.stringify(spec.format)}, expected "${BUNDLE_FORMAT}"`);
  if (spec.version !== BUNDLE_VERSION) throw new Error(`${dir}/bundle.json: bundle version ${spec.version}, this host knows version ${BUNDLE_VERSION}`);
  const graphs = {};
  await Promise.all(['act', 'advantage', 'train_step'].map(async (role) => {
    const entry = spec.graphs[role] && spec.graphs[role].onnx;
    if (!entry) throw new Error(`${dir}/bundle.json: no ONNX ${role} graph`);
    const [metaText, bytes] = await Promise.all([io.readText(`${dir}/${entry.meta}`), io.readBytes(`${dir}/${entry.file}`)]);
    graphs[role] = { meta: JSON.parse(metaText), bytes, params: spec.graphs[role].params || {} };
  }));
  const stateDir = `${dir}/${spec.state.dir}`;
  const index = await readGoldenIndex(io, stateDir);
  const initial = index.cases.find((c) => c.name === spec.state.case);
  if (!initial) throw new Error(`${stateDir}/index.json: no case ${JSON.stringify(spec.state.case)}`);
  const state = await readTensorMap(io, stateDir, initial.inputs);
  const missing = spec.state.names.filter((n) => !(n in state));
  if (missing.length) throw new Error(`${stateDir}: state lacks ${missing.join(', ')}`);
  return { dir, spec, graphs, state };
}
