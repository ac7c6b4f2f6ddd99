"""Composite actions exported: the composite loss and the composite actor through
``rlexport.export`` to ONNX with a dynamic batch, validated by ``validate``; plain
``torch.export.export`` with the keyword signature; and ``export_train_step`` (one-graph
gradient clip + Adam) with a composite actor, validated and stepped in ONNX Runtime."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from torch.export import Dim

import rlexport.objectives as ro
from helpers import ACT, HEADS, CompositeNets, assert_close, make_composite_data, quiet
from rlexport.export import export_onnx, export_train_step
from rlexport.validate import validate, validate_train_step

quiet()

COEFFS = {"move": 0.02, "steer": 0.05, "throttle": 0.1}


def _example(loss, nets, batch, seed, aggregated=False):
    data = make_composite_data(nets, (batch,), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    data["entropy_noise_throttle"] = torch.randn(getattr(loss, "samples_mc_entropy", 1), batch, ACT, generator=g)
    drop = {f"action_{h}_log_prob" for h in HEADS} if aggregated else {"sample_log_prob"}
    return {k: v for k, v in data.items() if k in loss.accepted_keys and k not in drop and not k.startswith("next_")}


@pytest.mark.parametrize("loss_name,opts,aggregated", [
    ("ClipPPOLoss", {"entropy_coeff": COEFFS}, False),
    ("PPOLoss", {"samples_mc_entropy": 2}, True),
    ("ReinforceLoss", {}, False),
])
def test_composite_loss_exports_to_onnx_with_dynamic_batch_and_validates(loss_name, opts, aggregated, tmp_path):
    nets = CompositeNets()
    loss = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    example = _example(loss, nets, 8, seed=1, aggregated=aggregated)
    path = export_onnx(loss, example, tmp_path / "loss.onnx")
    report = validate(path)
    assert report.passed, report.rows
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(example)
    other = _example(loss, nets, 13, seed=2, aggregated=aggregated)
    for key, got, want in zip(loss.out_keys, sess.run(None, {k: v.numpy() for k, v in other.items()}), loss(**other)):
        assert_close(torch.from_numpy(got), want.detach(), "onnx", key)


def test_composite_loss_plain_torch_export_with_keyword_dynamic_shapes():
    nets = CompositeNets()
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, entropy_coeff=COEFFS)
    example = _example(loss, nets, 6, seed=1)
    batch = Dim("batch", min=2, max=4096)
    shapes = {k: ({1: batch} if k.startswith("entropy_noise") else {0: batch}) for k in example}
    program = torch.export.export(loss, (), kwargs=example, dynamic_shapes=shapes)
    other = _example(loss, nets, 11, seed=2)
    for key, got, want in zip(loss.out_keys, program.module()(**other), loss(**other)):
        assert torch.equal(got, want), key


def test_composite_actor_exports_with_per_head_noise(tmp_path):
    nets = CompositeNets()
    nets.actor.return_log_prob = True

    def inputs(batch, seed):
        g = torch.Generator().manual_seed(seed)
        return {"observation": torch.randn(batch, 4, generator=g), "noise_move": torch.rand(batch, generator=g),
                "noise_steer": torch.randn(batch, ACT, generator=g), "noise_throttle": torch.randn(batch, ACT, generator=g)}

    path = export_onnx(nets.actor, inputs(6, 1), tmp_path / "actor.onnx")
    assert validate(path).passed
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(sess.get_outputs()) == len(nets.actor.output_keys) == 6
    other = inputs(17, 2)
    for key, got, want in zip(nets.actor.output_keys, sess.run(None, {k: v.numpy() for k, v in other.items()}),
                              nets.actor(**other)):
        assert_close(torch.from_numpy(got), want.detach(), "onnx", key)


def test_composite_train_step_exports_validates_and_steps(tmp_path):
    from rlexport.runtime.trainer import OnnxTrainer

    nets = CompositeNets()
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, entropy_coeff=COEFFS)
    example = _example(loss, nets, 8, seed=1)
    path = tmp_path / "step.onnx"
    export_train_step(loss, example, path, hyperparams={"lr": 1e-2, "max_grad_norm": 0.5})
    report = validate_train_step(path)
    assert report.passed, report.rows
    trainer = OnnxTrainer(path)
    before = {k: v.clone() for k, v in trainer.state_dict().items()}
    trainer.step(_example(loss, nets, 5, seed=3))
    after = trainer.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
