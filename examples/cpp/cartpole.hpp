// CartPole-v1 with exactly Gymnasium's dynamics (gymnasium/envs/classic_control/cartpole.py):
// Euler integration, tau 0.02 s, termination at |x| > 2.4 or |theta| > 12 degrees, truncation
// after 500 steps (the TimeLimit of gymnasium.make("CartPole-v1")). The state is double, as in
// Gymnasium; the observation is that state cast to float, as Gymnasium returns it.
// Header-only, standard library only. Reset is the caller's: set `state` (Gymnasium draws each
// component uniformly from [-0.05, 0.05]).
#pragma once

#include <array>
#include <cmath>
#include <numbers>

namespace rlexport {

struct CartPole {
  static constexpr double gravity = 9.8;
  static constexpr double masscart = 1.0;
  static constexpr double masspole = 0.1;
  static constexpr double total_mass = masspole + masscart;
  static constexpr double length = 0.5;  // half the pole's length
  static constexpr double polemass_length = masspole * length;
  static constexpr double force_mag = 10.0;
  static constexpr double tau = 0.02;
  static constexpr double theta_threshold_radians = 12 * 2 * std::numbers::pi / 360;
  static constexpr double x_threshold = 2.4;
  static constexpr int max_episode_steps = 500;

  struct Step {
    std::array<float, 4> observation;
    double reward;
    bool terminated;
    bool truncated;
  };

  std::array<double, 4> state{};  // x, x_dot, theta, theta_dot
  int elapsed_steps = 0;
  bool terminated_before = false;  // Gymnasium's steps_beyond_terminated is not None

  void reset(const std::array<double, 4>& initial) {
    state = initial;
    elapsed_steps = 0;
    terminated_before = false;
  }

  // action 1 pushes right, 0 left. The same operations in the same order as Gymnasium's step,
  // so that the result is the same to the last bit (or within the libm's sin/cos rounding).
  Step step(int action) {
    const auto [x, x_dot, theta, theta_dot] = state;
    const double force = action == 1 ? force_mag : -force_mag;
    const double costheta = std::cos(theta);
    const double sintheta = std::sin(theta);
    const double temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
    const double thetaacc = (gravity * sintheta - costheta * temp) /
                            (length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass));
    const double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
    state = {x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc};

    const bool terminated = state[0] < -x_threshold || state[0] > x_threshold ||
                            state[2] < -theta_threshold_radians || state[2] > theta_threshold_radians;
    double reward = 1.0;
    if (terminated && terminated_before) reward = 0.0;  // stepping past the end: Gymnasium gives 0
    terminated_before = terminated_before || terminated;
    elapsed_steps += 1;
    return {{static_cast<float>(state[0]), static_cast<float>(state[1]),
             static_cast<float>(state[2]), static_cast<float>(state[3])},
            reward, terminated, elapsed_steps >= max_episode_steps};
  }
};

}  // namespace rlexport
