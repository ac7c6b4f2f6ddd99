#!/usr/bin/env node
// Train CartPole from an rlexport bundle in Node (onnxruntime-node, one thread):
//   node examples/js/train.js BUNDLE_DIR [--steps N] [--seed S] [--every K] [--curve FILE.csv]
// Last line: "node: mean return R (last 20 episodes) after N steps, S steps/s".
import { writeFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { loadBundle } from './src/bundle.js';
import { CartPole } from './src/cartpole.js';
import { Host } from './src/host.js';
import { nodeIO } from './src/node-io.js';
import { Rng } from './src/rng.js';

function parseArgs(argv) {
  const args = { dir: null, steps: null, seed: 1, every: 10, curve: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--steps') args.steps = Number(value());
    else if (a === '--seed') args.seed = Number(value());
    else if (a === '--every') args.every = Number(value());
    else if (a === '--curve') args.curve = value();
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else if (args.dir === null) args.dir = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!args.dir) throw new Error('usage: train.js BUNDLE_DIR [--steps N] [--seed S] [--every K] [--curve FILE.csv]');
  for (const k of ['steps', 'seed', 'every']) {
    if (args[k] !== null && !(Number.isInteger(args[k]) && args[k] >= 0)) throw new Error(`--${k} must be a non-negative integer`);
  }
  return args;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`error: ${err.message}`);
    process.exit(2);
  }
  const bundle = await loadBundle(nodeIO, args.dir);
  if (bundle.spec.env.id !== 'CartPole-v1') throw new Error(`this script trains CartPole-v1; the bundle is for ${bundle.spec.env.id}`);
  const envRng = new Rng(args.seed, 1001); // env resets: a stream of their own
  const host = await Host.create({ ort, bundle, seed: args.seed, makeEnv: () => new CartPole({ rng: envRng }) });
  const curve = ['step,mean_return_20,episodes,steps_per_s'];
  const result = await host.train({
    totalSteps: args.steps ?? bundle.spec.schedule.total_steps,
    onProgress: (p) => {
      curve.push(`${p.step},${p.meanReturn},${p.episodes},${p.stepsPerSecond.toFixed(1)}`);
      if (args.every && p.update % args.every === 0) {
        console.log(`update ${p.update} step ${p.step}: mean return ${p.meanReturn.toFixed(1)} (${p.episodes} episodes), ${p.stepsPerSecond.toFixed(0)} steps/s`);
      }
    },
  });
  if (args.curve) writeFileSync(args.curve, curve.join('\n') + '\n');
  console.log(`node: mean return ${result.meanReturn.toFixed(1)} (last 20 episodes) after ${result.steps} steps, ${result.stepsPerSecond.toFixed(0)} steps/s`);
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
