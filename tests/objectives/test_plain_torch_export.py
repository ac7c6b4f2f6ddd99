"""torch's own exporters bind a loss's or an estimator's keyword inputs by name: ``forward`` has an
explicit keyword signature per configuration, so ``torch.export.export(module, (), kwargs=...,
dynamic_shapes={name: ...})`` and ``torch.onnx.export(..., dynamo=True)`` work directly, with a
dynamic batch (and time for estimators), and the results run at other sizes."""

from __future__ import annotations

import inspect

import onnxruntime as ort
import pytest
import torch
from torch.export import Dim

import rlexport.objectives as ro
import rlexport.value as rv
from helpers import Nets, assert_close, make_data, quiet

quiet()


def _loss_inputs(loss, nets, batch, seed):
    data = make_data(nets, (batch,), seed=seed)
    return {k: v for k, v in data.items() if k in loss.accepted_keys and not k.startswith("next_")}


def test_signature_follows_the_configuration():
    nets = Nets("categorical")
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    names = list(inspect.signature(loss.forward).parameters)
    assert names[:3] == ["observation", "action", "sample_log_prob"] and "advantage" in names
    loss.set_keys(advantage="my_advantage")
    assert "my_advantage" in inspect.signature(loss.forward).parameters
    assert list(inspect.signature(rv.GAE(gamma=0.9, lmbda=0.9).forward).parameters) == [
        "next_reward", "next_done", "next_terminated", "state_value", "next_state_value"]


@pytest.mark.parametrize("loss_name,kind", [("A2CLoss", "normal"), ("PPOLoss", "tanh"), ("ClipPPOLoss", "categorical"),
                                            ("KLPENPPOLoss", "normal"), ("ReinforceLoss", "categorical")])
def test_torch_export_export_with_keyword_dynamic_shapes(loss_name, kind):
    nets = Nets(kind)
    loss = getattr(ro, loss_name)(nets.actor, nets.critic)
    example = _loss_inputs(loss, nets, 6, seed=1)
    if kind == "tanh":
        example["entropy_noise"] = torch.randn(1, 6, 2)
    batch = Dim("batch", min=2, max=4096)
    shapes = {k: ({1: batch} if k == "entropy_noise" else {0: batch}) for k in example}
    program = torch.export.export(loss, (), kwargs=example, dynamic_shapes=shapes)
    other = _loss_inputs(loss, nets, 11, seed=2)
    if kind == "tanh":
        other["entropy_noise"] = torch.randn(1, 11, 2)
    for key, g, e in zip(loss.out_keys, program.module()(**other), loss(**other)):
        assert torch.equal(g, e), key


def test_torch_onnx_export_of_a_loss_runs_in_onnxruntime(tmp_path):
    nets = Nets("normal")
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    example = _loss_inputs(loss, nets, 6, seed=1)
    batch = Dim("batch", min=2, max=4096)
    onnx_program = torch.onnx.export(loss, (), kwargs=example, dynamic_shapes={k: {0: batch} for k in example}, dynamo=True)
    onnx_program.save(str(tmp_path / "loss.onnx"))
    session = ort.InferenceSession(str(tmp_path / "loss.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(example)
    for b in (1, 13):
        other = _loss_inputs(loss, nets, b, seed=b)
        got = session.run(None, {k: v.numpy() for k, v in other.items()})
        for key, g, e in zip(loss.out_keys, got, loss(**other)):
            assert_close(torch.from_numpy(g), e.detach(), "onnx", key)


def _estimator_inputs(batch, time, seed):
    g = torch.Generator().manual_seed(seed)
    return dict(next_reward=torch.randn(batch, time, 1, generator=g), next_done=torch.rand(batch, time, 1, generator=g) < 0.2,
                state_value=torch.randn(batch, time, 1, generator=g), next_state_value=torch.randn(batch, time, 1, generator=g))


@pytest.mark.parametrize("make", [lambda: rv.GAE(gamma=0.9, lmbda=0.8, max_steps=5), lambda: rv.TD0Estimator(gamma=0.9),
                                  lambda: rv.TD1Estimator(gamma=0.9, max_steps=5),
                                  lambda: rv.TDLambdaEstimator(gamma=0.9, lmbda=0.8, max_steps=5)],
                         ids=["GAE", "TD0", "TD1", "TDLambda"])
def test_estimators_export_with_dynamic_batch_and_time(make, tmp_path):
    est = make()
    example = _estimator_inputs(3, 8, 0)
    shapes = {k: {0: Dim("batch", min=1, max=1024), 1: Dim("time", min=2, max=32)} for k in example}
    program = torch.export.export(est, (), kwargs=example, dynamic_shapes=shapes)
    for b, t in ((1, 5), (4, 29)):
        other = _estimator_inputs(b, t, b + t)
        for g, e in zip(program.module()(**other), est(**other)):
            assert torch.equal(g, e)
    if isinstance(est, rv.GAE):
        onnx_program = torch.onnx.export(est, (), kwargs=example, dynamic_shapes=shapes, dynamo=True)
        onnx_program.save(str(tmp_path / "gae.onnx"))
        session = ort.InferenceSession(str(tmp_path / "gae.onnx"), providers=["CPUExecutionProvider"])
        other = _estimator_inputs(5, 23, 7)
        feeds = {i.name: other[i.name].numpy() for i in session.get_inputs()}
        for g, e in zip(session.run(None, feeds), est(**other)):
            assert_close(torch.from_numpy(g), e, "onnx")
