// PPO / A2C training from an rlexport bundle: the loop of `rlexport train --engine onnx`
// (rlexport/train/loop.py) around the bundle's three graphs, in any ONNX Runtime for JavaScript.
//
//   const host = await Host.create({ ort, bundle, makeEnv: (i) => new CartPole({ seed: i }), seed: 1 });
//   await host.train({ onProgress: (p) => console.log(p.step, p.meanReturn) });
//
// `ort` is onnxruntime-node or onnxruntime-web (the same API); `bundle` is loadBundle()'s
// result. An environment is any object with reset() -> observation and step(action) ->
// {observation, reward, terminated, truncated} (observations: arrays of numbers).
//
// Randomness (sampling noise, minibatch permutations) comes from `sources`: by default the
// host's seeded Rng; a parity test passes recorded noise and permutations instead.

import { Rng } from './rng.js';
import { jsonNumber } from './bundle.js';

const TYPED = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, bool: Uint8Array };

/** Running mean / variance (float64, the parallel update), as Gymnasium's normalisation wrappers. */
class RunningMeanStd {
  constructor({ mean, var: variance, count }) {
    this.mean = Float64Array.from(mean);
    this.var = Float64Array.from(variance);
    this.count = count;
  }

  /** `rows`: an array of rows (each an array of this.mean.length numbers). */
  update(rows) {
    const n = rows.length;
    const d = this.mean.length;
    const tot = this.count + n;
    for (let j = 0; j < d; j++) {
      let m = 0;
      for (let i = 0; i < n; i++) m += rows[i][j];
      m /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (rows[i][j] - m) ** 2;
      v /= n;
      const delta = m - this.mean[j];
      const m2 = this.var[j] * this.count + v * n + (delta ** 2 * this.count * n) / tot;
      this.mean[j] = this.mean[j] + (delta * n) / tot;
      this.var[j] = m2 / tot;
    }
    this.count = tot;
  }
}

function clip(x, lo, hi) {
  return Math.min(Math.max(x, lo), hi);
}

export class Host {
  /** Sessions for the bundle's three graphs on `ort`; envs from makeEnv(i), i < num_envs. */
  static async create({ ort, bundle, makeEnv, seed = 0, sessionOptions = {}, sources = null }) {
    const options = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3, ...sessionOptions };
    const sessions = {};
    for (const role of ['act', 'advantage', 'train_step']) {
      sessions[role] = await ort.InferenceSession.create(bundle.graphs[role].bytes, options);
    }
    return new Host(ort, bundle, sessions, makeEnv, seed, sources);
  }

  constructor(ort, bundle, sessions, makeEnv, seed, sources) {
    const spec = bundle.spec;
    this.ort = ort;
    this.bundle = bundle;
    this.spec = spec;
    this.sessions = sessions;
    this.rng = new Rng(seed);
    this.sources = sources || {
      noise: (n) => (spec.policy.noise.distribution === 'uniform'
        ? Float32Array.from({ length: n }, () => this.rng.random())
        : Float32Array.from({ length: n }, () => this.rng.normal())),
      permutation: (n) => this.rng.permutation(n),
    };
    const { num_envs: E, num_steps: T } = spec.rollout;
    this.E = E;
    this.T = T;
    this.D = spec.env.observation.shape[0];
    this.discrete = spec.env.action.type === 'discrete';
    this.A = this.discrete ? 1 : spec.env.action.shape[0];
    this.trainMeta = bundle.graphs.train_step.meta;

    // The training state: ort tensors, replaced by the train step's outputs after each update.
    this.state = {};
    for (const [name, t] of Object.entries(bundle.state)) this.state[name] = new ort.Tensor(t.dtype, t.data, t.shape);
    this.hyperparams = {};
    for (const [name, value] of Object.entries(this.trainMeta.hyperparams)) this.setHyperparam(name, value);

    // rollout buffers [E, T, ...] (index e * T + t)
    const N = E * T;
    this.buf = {
      observation: new Float32Array(N * this.D),
      next_observation: new Float32Array(N * this.D),
      action: this.discrete ? new BigInt64Array(N) : new Float32Array(N * this.A),
      sample_log_prob: new Float32Array(N),
      next_reward: new Float32Array(N),
      next_done: new Uint8Array(N),
      next_terminated: new Uint8Array(N),
    };

    const norm = spec.normalization || {};
    this.obsNorm = norm.observation ? { ...norm.observation, rms: new RunningMeanStd(norm.observation) } : null;
    this.rewNorm = norm.reward ? { ...norm.reward, rms: new RunningMeanStd({ mean: [norm.reward.mean].flat(), var: [norm.reward.var].flat(), count: norm.reward.count }), returns: Float64Array.from(norm.reward.returns) } : null;

    this.envs = Array.from({ length: E }, (_, i) => makeEnv(i));
    const raw = this.envs.map((env) => Array.from(env.reset()));
    if (this.obsNorm) this.obsNorm.rms.update(raw);
    this.obs = this.normalizeObs(raw);
    this.globalStep = spec.schedule.start_step;
    this.update = spec.schedule.start_update;
    this.epReturn = new Float64Array(E);
    this.epLength = new Int32Array(E);
    this.recent = []; // last 20 episodic returns
    this.episodes = 0;
    this.episodeLog = [];
  }

  setHyperparam(name, value) {
    const input = this.trainMeta.inputs[name];
    if (!input) throw new Error(`train step has no hyper-parameter ${name}`);
    this.hyperparams[name] = input.dtype === 'bool'
      ? new this.ort.Tensor('bool', Uint8Array.of(value ? 1 : 0), [])
      : new this.ort.Tensor(input.dtype, TYPED[input.dtype].of(jsonNumber(value)), []);
  }

  /** raw rows -> Float32Array [E * D] (the normalisation of bundle.json, or float32 rounding). */
  normalizeObs(rows) {
    const out = new Float32Array(rows.length * this.D);
    const n = this.obsNorm;
    for (let i = 0; i < rows.length; i++) {
      for (let j = 0; j < this.D; j++) {
        const x = rows[i][j];
        out[i * this.D + j] = n ? clip((x - n.rms.mean[j]) / Math.sqrt(n.rms.var[j] + n.eps), -n.clip, n.clip) : x;
      }
    }
    return out;
  }

  scaleRewards(rewards, dones) {
    const n = this.rewNorm;
    if (!n) return rewards;
    for (let i = 0; i < rewards.length; i++) n.returns[i] = n.returns[i] * n.gamma + rewards[i];
    n.rms.update(Array.from(n.returns, (r) => [r]));
    const out = rewards.map((r) => clip(r / Math.sqrt(n.rms.var[0] + n.eps), -n.clip, n.clip));
    for (let i = 0; i < rewards.length; i++) if (dones[i]) n.returns[i] = 0;
    return out;
  }

  paramFeeds(role) {
    const feeds = {};
    for (const [input, stateName] of Object.entries(this.bundle.graphs[role].params)) feeds[input] = this.state[stateName];
    return feeds;
  }

  /** One acting step on the current observations: {action, sample_log_prob, state_value}. */
  async act(noise) {
    const { ort, E, D } = this;
    const noiseDims = this.discrete ? [E] : [E, this.A];
    const out = await this.sessions.act.run({
      ...this.paramFeeds('act'),
      observation: new ort.Tensor('float32', this.obs, [E, D]),
      noise: new ort.Tensor('float32', noise, noiseDims),
    });
    return { action: out.action.data, sample_log_prob: out.sample_log_prob.data, state_value: out.state_value.data };
  }

  envAction(action, e) {
    if (this.discrete) return Number(action[e]);
    const { low, high } = this.spec.env.action;
    const a = Array.from(action.subarray(e * this.A, (e + 1) * this.A));
    return this.spec.policy.distribution === 'normal' ? a.map((x, j) => clip(x, low[j], high[j])) : a;
  }

  /** One rollout of num_steps steps in every env (same-step autoreset). */
  async collect(onEpisode = null) {
    const { E, T, D, A, buf } = this;
    for (let t = 0; t < T; t++) {
      const { action, sample_log_prob } = await this.act(this.sources.noise(this.discrete ? E : E * A));
      const raw = [];
      const finals = [];
      const rewards = [];
      const dones = [];
      const terms = [];
      for (let e = 0; e < E; e++) {
        const r = this.envs[e].step(this.envAction(action, e));
        const done = r.terminated || r.truncated;
        finals.push(Array.from(r.observation));
        raw.push(done ? Array.from(this.envs[e].reset()) : finals[e]);
        rewards.push(r.reward);
        dones.push(done);
        terms.push(r.terminated);
      }
      if (this.obsNorm) this.obsNorm.rms.update(raw);
      const nextObs = this.normalizeObs(finals);
      const scaled = this.scaleRewards(rewards, dones);
      for (let e = 0; e < E; e++) {
        const i = e * T + t;
        buf.observation.set(this.obs.subarray(e * D, (e + 1) * D), i * D);
        buf.next_observation.set(nextObs.subarray(e * D, (e + 1) * D), i * D);
        if (this.discrete) buf.action[i] = action[e];
        else buf.action.set(action.subarray(e * A, (e + 1) * A), i * A);
        buf.sample_log_prob[i] = sample_log_prob[e];
        buf.next_reward[i] = scaled[e];
        buf.next_done[i] = dones[e] ? 1 : 0;
        buf.next_terminated[i] = terms[e] ? 1 : 0;
      }
      this.obs = this.normalizeObs(raw);
      this.globalStep += E;
      for (let e = 0; e < E; e++) {
        this.epReturn[e] += rewards[e];
        this.epLength[e] += 1;
        if (dones[e]) {
          this.episodes += 1;
          this.recent.push(this.epReturn[e]);
          if (this.recent.length > 20) this.recent.shift();
          if (onEpisode) onEpisode({ step: this.globalStep, env: e, return: this.epReturn[e], length: this.epLength[e] });
          this.epReturn[e] = 0;
          this.epLength[e] = 0;
        }
      }
    }
  }

  /** {advantage, value_target}: Float32Array [E * T] from the advantage graph. */
  async advantages() {
    const { ort, E, T, D, buf } = this;
    const out = await this.sessions.advantage.run({
      ...this.paramFeeds('advantage'),
      observation: new ort.Tensor('float32', buf.observation, [E, T, D]),
      next_observation: new ort.Tensor('float32', buf.next_observation, [E, T, D]),
      next_reward: new ort.Tensor('float32', buf.next_reward, [E, T, 1]),
      next_done: new ort.Tensor('bool', buf.next_done, [E, T, 1]),
      next_terminated: new ort.Tensor('bool', buf.next_terminated, [E, T, 1]),
    });
    return { advantage: out.advantage.data, value_target: out.value_target.data };
  }

  learningRate() {
    const lr = this.spec.schedule.lr;
    if (lr.kind === 'constant') return lr.initial;
    return Math.max(1 - this.update / this.spec.schedule.num_updates, 0) * lr.initial;
  }

  /** The rollout as train-step columns {name: {data, width}} ([N, width] row-major). */
  flatBatch(adv) {
    const { D, A, buf } = this;
    const N = this.E * this.T;
    const stateValue = new Float32Array(N);
    for (let i = 0; i < N; i++) stateValue[i] = adv.value_target[i] - adv.advantage[i];
    const columns = {
      observation: { data: buf.observation, width: D },
      action: { data: buf.action, width: this.discrete ? 1 : A },
      sample_log_prob: { data: buf.sample_log_prob, width: 1 },
      advantage: { data: adv.advantage, width: 1 },
      value_target: { data: adv.value_target, width: 1 },
      state_value: { data: stateValue, width: 1 },
    };
    return Object.fromEntries(this.spec.update.batch.map((k) => [k, columns[k]]));
  }

  minibatch(flat, idx) {
    const feeds = {};
    for (const [name, col] of Object.entries(flat)) {
      const input = this.trainMeta.inputs[name];
      const out = new TYPED[input.dtype](idx.length * col.width);
      for (let r = 0; r < idx.length; r++) {
        const src = idx[r] * col.width;
        for (let c = 0; c < col.width; c++) out[r * col.width + c] = col.data[src + c];
      }
      const dims = input.shape.map((d) => (typeof d === 'string' ? idx.length : d));
      feeds[name] = new this.ort.Tensor(input.dtype, out, dims);
    }
    return feeds;
  }

  /** One train-step call: feeds state + hp.* + batch, keeps the new state. Returns the outputs. */
  async trainStep(batchFeeds) {
    const out = await this.sessions.train_step.run({ ...this.state, ...this.hyperparams, ...batchFeeds });
    for (const [input, output] of Object.entries(this.trainMeta.state)) this.state[input] = out[output];
    return out;
  }

  /** Advantages, then epochs x shuffled minibatches of train steps; returns mean losses. */
  async learn() {
    const adv = await this.advantages();
    const flat = this.flatBatch(adv);
    const N = this.E * this.T;
    const mbs = this.spec.update.minibatch_size;
    const lr = this.learningRate();
    this.setHyperparam('hp.lr', lr);
    const sums = {};
    let count = 0;
    for (let epoch = 0; epoch < this.spec.update.epochs; epoch++) {
      const perm = this.sources.permutation(N);
      for (let start = 0; start < N; start += mbs) {
        const idx = perm.subarray(start, Math.min(start + mbs, N));
        if (idx.length < mbs && start > 0) continue; // one graph shape: fold a remainder away
        const out = await this.trainStep(this.minibatch(flat, idx));
        for (const [k, t] of Object.entries(out)) {
          if (k.startsWith('loss_') || k === 'grad_norm') sums[k] = (sums[k] || 0) + Number(t.data[0]);
        }
        count += 1;
      }
    }
    this.update += 1;
    const result = { learningRate: lr };
    for (const [k, v] of Object.entries(sums)) result[k] = v / Math.max(count, 1);
    return result;
  }

  meanReturn() {
    return this.recent.length ? this.recent.reduce((a, b) => a + b, 0) / this.recent.length : NaN;
  }

  /**
   * Train until `totalSteps` (default: the bundle's schedule) environment steps; after every
   * update onProgress({update, step, meanReturn, episodes, stepsPerSecond, losses}) is called
   * (await-ed: a page can draw); shouldStop() ends early.
   */
  async train({ totalSteps = this.spec.schedule.total_steps, onProgress = null, onEpisode = null, shouldStop = null } = {}) {
    const numUpdates = Math.max(1, Math.floor(totalSteps / (this.E * this.T)));
    const start = this.globalStep;
    const t0 = Date.now();
    while (this.update < numUpdates && !(shouldStop && shouldStop())) {
      await this.collect(onEpisode);
      const losses = await this.learn();
      if (onProgress) {
        const seconds = (Date.now() - t0) / 1000;
        await onProgress({ update: this.update, step: this.globalStep, meanReturn: this.meanReturn(), episodes: this.episodes,
          stepsPerSecond: (this.globalStep - start) / Math.max(seconds, 1e-9), seconds, losses });
      }
    }
    const seconds = (Date.now() - t0) / 1000;
    return { steps: this.globalStep, meanReturn: this.meanReturn(), episodes: this.episodes, seconds,
      stepsPerSecond: (this.globalStep - start) / Math.max(seconds, 1e-9) };
  }

  /** The current parameters {state name: TypedArray}. */
  params() {
    return Object.fromEntries(Object.entries(this.state).filter(([k]) => k.startsWith('param.')).map(([k, t]) => [k, t.data]));
  }
}
