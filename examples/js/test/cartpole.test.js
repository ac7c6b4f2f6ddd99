// The JS CartPole against Gymnasium's CartPole-v1, step for step from the same float64 states
// and actions (examples/js/make_parity.py writes cartpole.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { CartPole } from '../src/cartpole.js';
import { Rng } from '../src/rng.js';
import { PARITY_DIR } from './helpers.js';

const trace = JSON.parse(readFileSync(path.join(PARITY_DIR, 'cartpole.json'), 'utf8'));

test('CartPole matches Gymnasium step for step (state, observation, reward, termination, truncation)', () => {
  assert.equal(trace.env, 'CartPole-v1');
  let steps = 0;
  let maxStateErr = 0;
  const ends = { terminated: 0, truncated: 0 };
  for (const [s, seg] of trace.segments.entries()) {
    const env = new CartPole({ maxEpisodeSteps: trace.max_episode_steps });
    env.setState(seg.state0, seg.elapsed0);
    for (let t = 0; t < seg.actions.length; t++) {
      const r = env.step(seg.actions[t]);
      const where = `segment ${s} step ${t}`;
      for (let j = 0; j < 4; j++) {
        maxStateErr = Math.max(maxStateErr, Math.abs(env.state[j] - seg.states[t][j]));
        // float64 state: the same operations in the same order; sin/cos may differ by an ulp
        assert.ok(Math.abs(env.state[j] - seg.states[t][j]) <= 1e-12 * Math.max(1, Math.abs(seg.states[t][j])), `${where}: state[${j}] ${env.state[j]} != ${seg.states[t][j]}`);
      }
      assert.deepEqual(Array.from(r.observation), seg.observations[t], `${where}: observation`);
      assert.equal(r.reward, seg.rewards[t], `${where}: reward`);
      assert.equal(r.terminated, seg.terminated[t], `${where}: terminated`);
      assert.equal(r.truncated, seg.truncated[t], `${where}: truncated`);
      steps++;
    }
    if (seg.terminated.at(-1)) ends.terminated++;
    if (seg.truncated.at(-1)) ends.truncated++;
  }
  assert.ok(ends.terminated >= 4 && ends.truncated >= 2, `the trace should end by both termination and truncation: ${JSON.stringify(ends)}`);
  console.log(`# ${steps} steps in ${trace.segments.length} segments, max |state - gymnasium| = ${maxStateErr}`);
});

test('CartPole reset draws uniform(-0.05, 0.05) states and refuses bad actions', () => {
  const env = new CartPole({ rng: new Rng(7) });
  for (let i = 0; i < 100; i++) {
    const obs = env.reset();
    assert.equal(obs.length, 4);
    for (const x of env.state) assert.ok(x >= -0.05 && x < 0.05);
  }
  assert.throws(() => env.step(2), /action must be 0 or 1/);
  assert.throws(() => new CartPole().step(0), /reset\(\) before step/);
});
