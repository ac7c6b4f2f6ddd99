'use strict';
// onnxruntime-node glue for golden samples: locate artifacts, build ort.Tensors from golden
// tensors, run a graph and compare its outputs.

const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { loadGolden, mismatch, maxAbsErr } = require('./golden');

// Where examples/make_artifacts.py wrote the artifacts (RLEXPORT_ARTIFACTS overrides).
const ARTIFACTS = path.resolve(process.env.RLEXPORT_ARTIFACTS || path.join(__dirname, '..', 'artifacts'));

function manifest() {
  const file = path.join(ARTIFACTS, 'manifest.json');
  if (!fs.existsSync(file)) {
    throw new Error(`${file} not found: run examples/make_artifacts.py (or examples/run.sh) first`);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** The golden sample registered under `role` in the manifest. */
function golden(role) {
  const m = manifest();
  const entry = m.artifacts && m.artifacts[role];
  if (!entry) throw new Error(`manifest.json has no artifact "${role}"`);
  return { entry, golden: loadGolden(path.join(ARTIFACTS, entry.golden)) };
}

function toOrt(t) {
  return new ort.Tensor(t.dtype, t.data, t.shape);
}

async function open(artifact) {
  return ort.InferenceSession.create(artifact, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionProviders: ['cpu'],
    logSeverityLevel: 3, // errors only (the train-step graph keeps one unused initializer: a warning)
  });
}

/** Map of golden tensors -> feeds object of ort.Tensors. */
function feeds(...maps) {
  const f = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) f[k] = v instanceof ort.Tensor ? v : toOrt(v);
  return f;
}

/**
 * Compare every golden output with the session's results; returns a list of messages.
 * `stats` (optional) accumulates {tensors, maxAbsErr} for the log.
 */
function compareOutputs(label, results, expected, g, stats = { tensors: 0, maxAbsErr: 0 }) {
  const errors = [];
  for (const [name, exp] of Object.entries(expected)) {
    const got = results[name];
    if (!got) {
      errors.push(`${label}: graph gave no output "${name}"`);
      continue;
    }
    if (got.type !== exp.dtype) errors.push(`${label}: ${name} dtype ${got.type} != golden ${exp.dtype}`);
    const msg = mismatch(`${label}: ${name}`, got.data, got.dims, exp, g.rtol, g.atol);
    if (msg) errors.push(msg);
    stats.tensors++;
    if (exp.dtype.startsWith('float') && got.data.length === exp.data.length) {
      stats.maxAbsErr = Math.max(stats.maxAbsErr, maxAbsErr(got.data, exp));
    }
  }
  return errors;
}

/** The graph's inputs and outputs must be exactly those the golden sample names. */
function checkSignature(session, g, inputNames, outputNames) {
  const sorted = (a) => [...a].sort();
  const errors = [];
  const gi = JSON.stringify(sorted(inputNames));
  const go = JSON.stringify(sorted(outputNames));
  if (JSON.stringify(sorted(session.inputNames)) !== gi) {
    errors.push(`graph inputs ${JSON.stringify(session.inputNames)} != golden inputs ${gi}`);
  }
  if (JSON.stringify(sorted(session.outputNames)) !== go) {
    errors.push(`graph outputs ${JSON.stringify(session.outputNames)} != golden outputs ${go}`);
  }
  return errors;
}

module.exports = { ort, ARTIFACTS, manifest, golden, toOrt, open, feeds, compareOutputs, checkSignature };
