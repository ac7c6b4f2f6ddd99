// CartPole-v1 with exactly Gymnasium's dynamics (gymnasium/envs/classic_control/cartpole.py,
// Euler integration, float64 state), termination (|x| > 2.4 or |theta| > 12 degrees), reward
// 1 per step and TimeLimit's truncation at 500 steps. Observations are the state rounded to
// float32, as Gymnasium returns them.
//
// reset() draws the state uniformly from [-0.05, 0.05)^4 with the host's generator (Gymnasium
// uses numpy's PCG64; for step-for-step comparisons set the state with setState()).

import { Rng } from './rng.js';

const GRAVITY = 9.8;
const MASSCART = 1.0;
const MASSPOLE = 0.1;
const TOTAL_MASS = MASSPOLE + MASSCART;
const LENGTH = 0.5; // half the pole's length
const POLEMASS_LENGTH = MASSPOLE * LENGTH;
const FORCE_MAG = 10.0;
const TAU = 0.02;
const THETA_THRESHOLD = (12 * 2 * Math.PI) / 360;
const X_THRESHOLD = 2.4;

export class CartPole {
  static observationSize = 4;
  static actions = 2;

  constructor({ seed = 0, maxEpisodeSteps = 500, rng = null } = {}) {
    this.rng = rng || new Rng(seed);
    this.maxEpisodeSteps = maxEpisodeSteps;
    this.state = null; // Float64Array [x, x_dot, theta, theta_dot]
    this.elapsed = 0;
  }

  observation() {
    return Float32Array.from(this.state);
  }

  reset() {
    this.state = Float64Array.from({ length: 4 }, () => this.rng.uniform(-0.05, 0.05));
    this.elapsed = 0;
    return this.observation();
  }

  /** Set the float64 state (and the TimeLimit step counter) explicitly. */
  setState(state, elapsed = 0) {
    this.state = Float64Array.from(state);
    this.elapsed = elapsed;
    return this.observation();
  }

  /** action 0 (push left) or 1 (push right) -> {observation, reward, terminated, truncated}. */
  step(action) {
    if (this.state === null) throw new Error('CartPole: call reset() before step()');
    const a = Number(action);
    if (a !== 0 && a !== 1) throw new Error(`CartPole: action must be 0 or 1, got ${action}`);
    let [x, xDot, theta, thetaDot] = this.state;
    const force = a === 1 ? FORCE_MAG : -FORCE_MAG;
    const costheta = Math.cos(theta);
    const sintheta = Math.sin(theta);
    const temp = (force + POLEMASS_LENGTH * (thetaDot * thetaDot) * sintheta) / TOTAL_MASS;
    const thetaacc = (GRAVITY * sintheta - costheta * temp) /
      (LENGTH * (4.0 / 3.0 - (MASSPOLE * (costheta * costheta)) / TOTAL_MASS));
    const xacc = temp - (POLEMASS_LENGTH * thetaacc * costheta) / TOTAL_MASS;
    x = x + TAU * xDot;
    xDot = xDot + TAU * xacc;
    theta = theta + TAU * thetaDot;
    thetaDot = thetaDot + TAU * thetaacc;
    this.state = Float64Array.of(x, xDot, theta, thetaDot);
    const terminated = x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD || theta > THETA_THRESHOLD;
    this.elapsed += 1;
    const truncated = this.elapsed >= this.maxEpisodeSteps;
    return { observation: this.observation(), reward: 1.0, terminated, truncated };
  }
}
