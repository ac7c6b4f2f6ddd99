'use strict';
// Run an rlexport train-step graph (export_train_step) from JavaScript: the update loop that a
// host program needs. Everything comes from X.json beside X.onnx:
//   meta.state        {state input: output that replaces it after each step}
//   meta.hyperparams  {hp.<name>: default}, fed as float64 0-d tensors (hp.nesterov: bool)
//   meta.inputs       per input: dtype, shape (with "batch" for the dynamic axis), role

const fs = require('node:fs');
const ort = require('onnxruntime-node');

function readMeta(onnxPath) {
  return JSON.parse(fs.readFileSync(onnxPath.replace(/\.onnx$/, '.json'), 'utf8'));
}

function hyperparamTensor(spec, value) {
  if (spec.dtype === 'bool') return new ort.Tensor('bool', Uint8Array.of(value ? 1 : 0), []);
  // Non-finite defaults (max_grad_norm = inf: no clipping) may be written as strings.
  return new ort.Tensor(spec.dtype, Float64Array.of(Number(value)), []);
}

class TrainStep {
  /** `initialState`: {state input name: ort.Tensor} (params from your weights, optimizer slots
   * zero, step 0); e.g. the golden sample's initial_state. */
  static async load(onnxPath, initialState, options = {}) {
    const meta = readMeta(onnxPath);
    if (meta.kind !== 'train_step') throw new Error(`${onnxPath}: kind ${meta.kind}, expected train_step`);
    const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 1, logSeverityLevel: 3, ...options });
    const missing = Object.keys(meta.state).filter((k) => !(k in initialState));
    if (missing.length) throw new Error(`initial state lacks ${missing.join(', ')}`);
    return new TrainStep(meta, session, { ...initialState });
  }

  constructor(meta, session, state) {
    this.meta = meta;
    this.session = session;
    this.state = state;
    this.hyperparams = {};
    for (const [name, value] of Object.entries(meta.hyperparams)) {
      this.hyperparams[name] = hyperparamTensor(meta.inputs[name], value);
    }
  }

  /** Change a hyper-parameter (e.g. a learning-rate schedule): setHyperparam('hp.lr', 3e-4). */
  setHyperparam(name, value) {
    if (!(name in this.hyperparams)) throw new Error(`no hyper-parameter ${name}`);
    this.hyperparams[name] = hyperparamTensor(this.meta.inputs[name], value);
  }

  /** One update on `batch` ({name: ort.Tensor}); returns every graph output (losses,
   * grad_norm, new.*), and keeps the new parameters and optimizer state for the next step. */
  async step(batch) {
    const out = await this.session.run({ ...this.state, ...this.hyperparams, ...batch });
    for (const [input, output] of Object.entries(this.meta.state)) this.state[input] = out[output];
    return out;
  }

  /** The current parameters: {param name: ort.Tensor}. */
  params() {
    return Object.fromEntries(Object.entries(this.state).filter(([k]) => k.startsWith('param.')));
  }
}

module.exports = { TrainStep, readMeta };
