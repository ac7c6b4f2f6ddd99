"""examples/cpp/cartpole.hpp against Gymnasium's CartPole-v1, step for step from the same state
and actions: the double state bit for bit, the float observation, reward, terminated and
truncated (TimeLimit 500). The C++ driver is built with the C++20 compiler (`make test` checks
that one exists before any test runs, so this skip cannot trigger there)."""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import gymnasium as gym
import numpy as np
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CXX = os.environ.get("CXX", "c++")
pytestmark = pytest.mark.skipif(shutil.which(CXX) is None, reason=f"no C++ compiler ({CXX})")


@pytest.fixture(scope="module")
def cartpole_cpp(tmp_path_factory):
    exe = tmp_path_factory.mktemp("cartpole") / "test_cartpole"
    subprocess.run([CXX, "-std=c++20", "-O1", "-Wall", "-Werror", str(ROOT / "examples/cpp/test_cartpole.cpp"),
                    "-o", str(exe)], check=True, capture_output=True, text=True, timeout=300)
    return exe


def _run_cpp(exe, state, actions):
    """The C++ rows (state, observation, reward, terminated, truncated) for `actions` from `state`."""
    script = "reset " + " ".join(float(v).hex() for v in state) + "\n"
    script += "".join(f"step {a}\n" for a in actions)
    done = subprocess.run([str(exe)], input=script, capture_output=True, text=True, timeout=60, check=True)
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split()
        values = [float.fromhex(p) for p in parts[:8]]
        rows.append((values[:4], np.array(values[4:8], dtype=np.float32), float(parts[8]),
                     parts[9] == "1", parts[10] == "1"))
    return rows


def _gym_episode(seed, policy, extra_steps=0):
    """Start state, actions and Gymnasium's rows for one episode (plus steps past termination)."""
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    start = env.unwrapped.state.copy()
    rng = np.random.default_rng(seed)
    actions, rows, ended_at = [], [], None
    while ended_at is None or len(rows) < ended_at + extra_steps:
        action = policy(env.unwrapped.state, rng)
        with warnings.catch_warnings():  # stepping past termination warns, on purpose here
            warnings.simplefilter("ignore")
            target = env if ended_at is None else env.unwrapped
            obs, reward, terminated, truncated, _ = target.step(action)
        actions.append(action)
        rows.append((list(env.unwrapped.state), obs, float(reward), terminated, truncated))
        if ended_at is None and (terminated or truncated):
            ended_at = len(rows)
            if truncated:
                break
    env.close()
    return start, actions, rows


def _random(state, rng):
    return int(rng.integers(2))


def _balancing(state, rng):
    x, x_dot, theta, theta_dot = state
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


@pytest.mark.parametrize("seed", range(12))
def test_random_actions_match_gymnasium_bit_for_bit(cartpole_cpp, seed):
    start, actions, expected = _gym_episode(seed, _random, extra_steps=3 if seed % 3 == 0 else 0)
    got = _run_cpp(cartpole_cpp, start, actions)
    assert len(got) == len(expected)
    for t, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine[0] == theirs[0], f"seed {seed}, step {t}: state {mine[0]} != {theirs[0]}"
        np.testing.assert_array_equal(mine[1], theirs[1], err_msg=f"seed {seed}, step {t}: observation")
        assert mine[2:] == theirs[2:], f"seed {seed}, step {t}: reward/terminated/truncated"


def test_a_balanced_pole_is_truncated_at_500_steps(cartpole_cpp):
    start, actions, expected = _gym_episode(7, _balancing)
    assert len(expected) == 500 and expected[-1][4] and not expected[-1][3]
    got = _run_cpp(cartpole_cpp, start, actions)
    assert [row[0] for row in got] == [row[0] for row in expected]
    assert [row[2:] for row in got] == [row[2:] for row in expected]


def test_driver_rejects_an_invalid_action(cartpole_cpp):
    done = subprocess.run([str(cartpole_cpp)], input="reset 0 0 0 0\nstep 2\n", capture_output=True, text=True)
    assert done.returncode == 2
