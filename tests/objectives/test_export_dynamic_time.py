"""In-graph GAE with a dynamic batch AND time axis: ClipPPOLoss exported (torch.export -> ONNX)
with the estimator's scan kept to ``max_steps=6`` doublings (horizons up to 64; the default
keeps many more and makes torch.export with a symbolic T slow), checked in ONNX Runtime at two
other horizons (and batch sizes) against eager."""

from __future__ import annotations

import torch

import rlexport.objectives as ro
from helpers import Nets, assert_close, quiet
from test_objectives_export import Positional, _dynamic_shapes, _example

quiet()


def test_clip_ppo_ingraph_gae_dynamic_batch_and_time(tmp_path):
    import onnxruntime as ort

    import rlexport.value as rv

    nets = Nets("normal")
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.2, normalize_advantage=True)
    loss.make_value_estimator(rv.ValueEstimators.GAE, gamma=0.97, lmbda=0.9, max_steps=6)
    example = _example(loss, nets, (4, 6), seed=1, ingraph=True)
    names = list(example)
    dims = loss.dynamic_dims(example)
    assert {lbl for spec in dims.values() for lbl in spec.values()} == {"batch", "time"}
    ep = torch.export.export(Positional(loss, names).eval(), tuple(example.values()),
                             dynamic_shapes=_dynamic_shapes(loss, example), strict=False)
    path = tmp_path / "loss.onnx"
    torch.onnx.export(ep, tuple(example.values()), dynamo=True, input_names=names,
                      output_names=list(loss.out_keys)).save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = next(i for i in sess.get_inputs() if i.name == "observation")
    assert all(isinstance(d, str) for d in obs.shape[:2]), obs.shape  # batch and time dynamic
    for shape, seed in (((3, 11), 2), ((7, 37), 3)):
        other = _example(loss, nets, shape, seed=seed, ingraph=True)
        eager = loss(**other)
        res = sess.run(None, {k: v.numpy() for k, v in other.items()})
        for k, a, b in zip(loss.out_keys, res, eager):
            assert_close(torch.from_numpy(a), b.detach(), "onnx", f"{shape} {k}")
