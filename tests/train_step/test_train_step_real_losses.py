"""The real rlexport losses (ClipPPO, A2C, KL-PPO) on the model presets: K=20 update steps in
ONNX Runtime vs eager torch (clip_grad_norm_ + Adam), batch size changing every step.

Bound: max |param difference| over the 20 steps ≤ 1e-5 (float32), ≤ 1e-10 (float64).
"""

from __future__ import annotations

import pytest
import torch

import rlexport.models.presets as presets
import rlexport.objectives as objectives
from rlexport.export.train_step import export_train_step
from rlexport.validate import validate_train_step

HP = {"lr": 3e-3, "max_grad_norm": 0.5, "eps": 1e-5}


def _example(preset, loss_name, batch, time=None, dtype=torch.float32, gae_in_graph=False, seed=1):
    ac = presets.get_preset(preset).build(dtype=dtype) if _accepts_dtype() else presets.get_preset(preset).build()
    data = ac.example_inputs(batch, time=time, log_prob_key="sample_log_prob")
    data = {k: (v.to(dtype) if v.dtype.is_floating_point else v) for k, v in data.items()}
    g = torch.Generator().manual_seed(seed)
    lead = data["observation"].shape[:-1]
    ex = {"observation": data["observation"], "action": data["action"]}
    if loss_name != "a2c":
        ex["sample_log_prob"] = data["sample_log_prob"]
    if gae_in_graph:
        ex.update({k: data[k] for k in ("next_reward", "next_done", "next_terminated", "next_observation")})
    else:
        ex["advantage"] = torch.randn(*lead, 1, generator=g, dtype=dtype)
        ex["value_target"] = torch.randn(*lead, 1, generator=g, dtype=dtype)
    if preset == "pendulum":  # TanhNormal: Monte-Carlo entropy, its noise an input (1 sample)
        ex["entropy_noise"] = torch.randn(1, *lead, data["action"].shape[-1], generator=g, dtype=dtype)
    if loss_name == "klpen":
        with torch.no_grad():
            params = ac.actor.dist_params(observation=data["observation"])
        ex.update({k: v.detach() + 0.05 * torch.randn(v.shape, generator=g, dtype=dtype).abs() for k, v in params.items()})
    return ac, ex


def _accepts_dtype():
    import inspect

    return "dtype" in inspect.signature(presets.Preset.build).parameters


def _loss(name, ac):
    if name == "clip_ppo":
        return objectives.ClipPPOLoss(ac.actor, ac.critic, clip_epsilon=0.2, entropy_coeff=0.01)
    if name == "a2c":
        return objectives.A2CLoss(ac.actor, ac.critic, entropy_coeff=0.01)
    return objectives.KLPENPPOLoss(ac.actor, ac.critic, dtarg=0.01, beta=1.0, entropy_coeff=0.01)


@pytest.mark.parametrize(
    "preset,loss_name,dtype",
    [
        ("cartpole", "clip_ppo", torch.float32),  # Categorical
        ("pendulum", "a2c", torch.float64),  # Normal, float64
        ("mujoco", "klpen", torch.float32),  # TanhNormal, beta fed back as loss state
    ],
)
def test_real_loss_k_steps(tmp_path, preset, loss_name, dtype):
    ac, ex = _example(preset, loss_name, 12, dtype=dtype)
    loss = _loss(loss_name, ac)
    path = tmp_path / f"{loss_name}.onnx"
    meta = export_train_step(loss, ex, path, "adam", hyperparams=HP, dtype=dtype)
    if loss_name == "klpen":
        assert meta["state"]["beta"] == "beta_next"
    report = validate_train_step(path, k=20, loss=loss, batch_sizes=[12, 5, 31, 2, 17])
    bound = 1e-5 if dtype == torch.float32 else 1e-10
    assert report.passed, str(report)
    assert report.max_abs_param_diff <= bound, str(report)
