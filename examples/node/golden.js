'use strict';
// Reader for rlexport golden samples (docs/design.md, "Golden sample format"):
//
//   X.golden/index.json
//   X.golden/<case>/<tensor name>.bin     raw little-endian, C order, no header
//
// Every tensor entry is {dtype, shape, file}; `file` is relative to the golden directory.
// No dependency besides Node's standard library: a runtime other than onnxruntime can use it.

const fs = require('node:fs');
const path = require('node:path');

// dtype -> [TypedArray constructor, bytes per element]. bool is one byte per element (0/1).
// float16 (written by rlexport for half-precision artifacts) stays as raw Uint16Array bits,
// which is what onnxruntime's 'float16' tensors take; comparisons decode it.
const DTYPES = {
  float32: [Float32Array, 4],
  float16: [Uint16Array, 2],
  float64: [Float64Array, 8],
  int64: [BigInt64Array, 8],
  int32: [Int32Array, 4],
  bool: [Uint8Array, 1],
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE 754 half-precision bits -> number. */
function halfToNumber(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The numbers of a tensor's data (float16 bits decoded). */
function numbers(data, dtype) {
  if (dtype === 'float16' && data instanceof Uint16Array) return Array.from(data, halfToNumber);
  return data;
}

function numel(shape) {
  return shape.reduce((n, d) => n * d, 1);
}

/** Read one tensor entry {dtype, shape, file} -> {dtype, shape, data: TypedArray}. */
function readTensor(goldenDir, entry, name = entry.file) {
  const spec = DTYPES[entry.dtype];
  if (!spec) throw new Error(`${name}: unsupported dtype ${JSON.stringify(entry.dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`);
  const [Ctor, size] = spec;
  const file = path.join(goldenDir, entry.file);
  const buf = fs.readFileSync(file);
  const n = numel(entry.shape);
  if (buf.length !== n * size) {
    throw new Error(`${name}: ${file} has ${buf.length} bytes, shape [${entry.shape}] of ${entry.dtype} needs ${n * size}`);
  }
  // Copy into a fresh, aligned ArrayBuffer (a Buffer's byteOffset need not be aligned).
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  if (!LITTLE_ENDIAN && size > 1) {
    const bytes = new Uint8Array(ab);
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  return { dtype: entry.dtype, shape: entry.shape.slice(), data: new Ctor(ab) };
}

function readTensorMap(goldenDir, entries = {}) {
  const out = {};
  for (const [name, entry] of Object.entries(entries)) {
    out[name] = readTensor(goldenDir, entry, name);
    // Optional per-output tolerance (conditioning-aware, lower-precision artifacts): it replaces
    // the sample's top-level rtol/atol for this output; mismatch() applies it.
    if (entry.tolerance) out[name].tolerance = { rtol: Number(entry.tolerance.rtol), atol: Number(entry.tolerance.atol) };
  }
  return out;
}

/**
 * Load X.golden/: returns {dir, index, kind, rtol, atol, artifact (absolute path), state,
 * initialState, cases: [{name, inputs, outputs}]} with every tensor read.
 */
function loadGolden(goldenDir) {
  const dir = path.resolve(goldenDir);
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  if (index.format !== 'rlexport-golden') throw new Error(`${dir}: format ${JSON.stringify(index.format)}, expected "rlexport-golden"`);
  if (index.version !== 1) throw new Error(`${dir}: golden version ${index.version}, this reader knows version 1`);
  for (const key of ['artifact', 'kind', 'rtol', 'atol', 'cases']) {
    if (!(key in index)) throw new Error(`${dir}/index.json: missing "${key}"`);
  }
  const golden = {
    dir,
    index,
    kind: index.kind,
    rtol: index.rtol,
    atol: index.atol,
    // "artifact" names the file beside the golden directory.
    artifact: path.resolve(path.dirname(dir), index.artifact),
    state: index.state || null,
    initialState: index.initial_state ? readTensorMap(dir, index.initial_state) : null,
    cases: index.cases.map((c) => ({
      name: c.name,
      inputs: readTensorMap(dir, c.inputs),
      outputs: readTensorMap(dir, c.outputs),
    })),
  };
  if (golden.kind === 'train_step' && (!golden.state || !golden.initialState)) {
    throw new Error(`${dir}: a train_step golden needs "state" and "initial_state"`);
  }
  return golden;
}

/**
 * Compare `actual` (TypedArray, dims) with the golden tensor `expected`.
 * Floats: |a - e| <= atol + rtol * |e| elementwise (numpy.allclose; NaN equals NaN); a golden
 * output that carries its own `tolerance` ({rtol, atol} from index.json) uses it instead.
 * int64/int32/bool: exact. Returns null when they match, else a message.
 */
function mismatch(name, actualData, actualDims, expectedTensor, rtol, atol) {
  if (expectedTensor.tolerance) ({ rtol, atol } = expectedTensor.tolerance);
  const actual = numbers(actualData, expectedTensor.dtype);
  const expected = { ...expectedTensor, data: numbers(expectedTensor.data, expectedTensor.dtype) };
  const dims = Array.from(actualDims, Number);
  if (dims.length !== expected.shape.length || dims.some((d, i) => d !== expected.shape[i])) {
    return `${name}: shape [${dims}] != golden [${expected.shape}]`;
  }
  if (actual.length !== expected.data.length) return `${name}: ${actual.length} elements != golden ${expected.data.length}`;
  const exact = expected.dtype === 'int64' || expected.dtype === 'int32' || expected.dtype === 'bool';
  let bad = 0;
  let first = -1;
  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < actual.length; i++) {
    if (exact) {
      // bool may come back as JS booleans or 0/1; int64 as BigInt.
      const a = typeof actual[i] === 'boolean' ? Number(actual[i]) : actual[i];
      const e = expected.data[i];
      if (typeof a === 'bigint' || typeof e === 'bigint' ? BigInt(a) !== BigInt(e) : a !== e) {
        bad++;
        if (first < 0) first = i;
      }
      continue;
    }
    const a = Number(actual[i]);
    const e = Number(expected.data[i]);
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    const d = Math.abs(a - e);
    if (!(d <= atol + rtol * Math.abs(e))) {
      bad++;
      if (first < 0) first = i;
    }
    if (d > maxAbs || Number.isNaN(d)) maxAbs = d;
    if (e !== 0 && d / Math.abs(e) > maxRel) maxRel = d / Math.abs(e);
  }
  if (bad === 0) return null;
  return `${name}: ${bad}/${actual.length} elements differ beyond rtol=${rtol} atol=${atol}` +
    `; first at flat index ${first}: got ${actual[first]}, golden ${expected.data[first]}` +
    (exact ? '' : `; max abs err ${maxAbs}, max rel err ${maxRel}`);
}

/** Largest |a - e| over a float tensor (for logs). */
function maxAbsErr(actualData, expectedTensor) {
  const actual = numbers(actualData, expectedTensor.dtype);
  const expected = { data: numbers(expectedTensor.data, expectedTensor.dtype) };
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(Number(actual[i]) - Number(expected.data[i])));
  return m;
}

module.exports = { DTYPES, readTensor, loadGolden, mismatch, maxAbsErr, numel, halfToNumber };
