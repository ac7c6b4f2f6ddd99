"""In-graph GAE with a dynamic batch AND time axis: ClipPPOLoss exported to ONNX through
``rlexport.export`` with the estimator's scan kept to ``max_steps=6`` doublings (horizons up to
64; the default keeps many more and makes torch.export with a symbolic T slow); the artifact
passes ``validate`` and matches eager in ONNX Runtime at two other horizons (and batch sizes)."""

from __future__ import annotations

import torch

import rlexport.objectives as ro
import rlexport.value as rv
from helpers import Nets, assert_close, quiet
from test_objectives_export import _example, _export_checked

quiet()


def test_clip_ppo_ingraph_gae_dynamic_batch_and_time(tmp_path):
    nets = Nets("normal")
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.2, normalize_advantage=True)
    loss.make_value_estimator(rv.ValueEstimators.GAE, gamma=0.97, lmbda=0.9, max_steps=6)
    example = _example(loss, nets, (4, 6), seed=1, ingraph=True)
    dims = loss.dynamic_dims(example)
    assert {lbl for spec in dims.values() for lbl in spec.values()} == {"batch", "time"}
    sess = _export_checked(loss, example, tmp_path / "loss.onnx", dynamic=True)
    obs = next(i for i in sess.get_inputs() if i.name == "observation")
    assert all(isinstance(d, str) for d in obs.shape[:2]), obs.shape  # batch and time dynamic
    for shape, seed in (((3, 11), 2), ((7, 37), 3)):
        other = _example(loss, nets, shape, seed=seed, ingraph=True)
        eager = loss(**other)
        res = sess.run(None, {k: v.numpy() for k, v in other.items()})
        for k, a, b in zip(loss.out_keys, res, eager):
            assert_close(torch.from_numpy(a), b.detach(), "onnx", f"{shape} {k}")
