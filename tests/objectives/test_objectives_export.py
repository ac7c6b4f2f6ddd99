"""Every loss exports through ``rlexport.export`` (``torch.export`` program, ONNX via dynamo) with
a dynamic batch; the written artifacts pass ``validate`` against their golden sample, and match
eager at other batch sizes (program: bit for bit; ONNX Runtime, CPU provider: the table's
tolerance)."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

import rlexport.objectives as ro
from helpers import Nets, assert_close, make_data, quiet
from rlexport.export import export_onnx, export_program
from rlexport.validate import validate

quiet()


def _example(loss, nets, shape, seed, ingraph=False):
    data = make_data(nets, shape, seed=seed, with_targets=not ingraph)
    if nets.kind == "tanh":
        g = torch.Generator().manual_seed(seed + 100)
        data["entropy_noise"] = torch.randn(getattr(loss, "samples_mc_entropy", 1), *shape, 2, generator=g, dtype=nets.dtype)
    if not ingraph:
        for k in ("next_observation", "next_reward", "next_done", "next_terminated"):
            data.pop(k)
    return {k: v for k, v in data.items() if k in loss.accepted_keys}


def _dynamic(loss, example, static=()):
    """The loss's own ``{input: {dim: label}}`` declaration without the ``static`` labels."""
    dims = {k: {d: lbl for d, lbl in spec.items() if lbl not in static} for k, spec in loss.dynamic_dims(example).items()}
    return {k: spec for k, spec in dims.items() if spec}


def _export_checked(loss, example, path, dynamic=True, dtype=None):
    """``export_onnx`` (verifies itself at other batch sizes) then ``validate`` on the file; an
    ONNX Runtime session on the written file."""
    path = export_onnx(loss, example, path, dynamic=dynamic, dtype=dtype)
    report = validate(path)
    assert report.passed, report.rows
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


CASES = [  # each loss, each distribution family, [B] and [B, T], advantage given and in-graph
    ("A2CLoss", "tanh", {"clip_value": 0.2}, (8,), False),
    ("PPOLoss", "normal", {"normalize_advantage": True, "loss_critic_type": "l1"}, (8,), False),
    ("ClipPPOLoss", "tanh", {"clip_value": 0.2, "samples_mc_entropy": 2}, (8,), False),
    ("ClipPPOLoss", "categorical", {"separate_losses": True, "reduction": "none"}, (4, 5), False),
    ("KLPENPPOLoss", "tanh", {"reduction": "sum"}, (8,), False),
    ("ReinforceLoss", "categorical", {}, (8,), False),
    # In-graph GAE: dynamic batch, static horizon here. (A dynamic horizon exports too, but
    # torch.export of the log-depth scan with a symbolic T takes ~1 min: the estimator's tests
    # cover dynamic T.)
    ("ClipPPOLoss", "normal", {"clip_value": 0.2}, (4, 6), True),
    ("A2CLoss", "categorical", {}, (4, 6), True),
]


@pytest.mark.parametrize("loss_name,kind,opts,shape,ingraph", CASES, ids=[f"{c[0]}-{c[1]}-{'ingraph' if c[4] else 'adv'}" for c in CASES])
def test_export_and_onnx_dynamic_batch(loss_name, kind, opts, shape, ingraph, tmp_path):
    nets = Nets(kind, shared=opts.get("separate_losses", False))
    loss = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    example = _example(loss, nets, shape, seed=1, ingraph=ingraph)
    names = list(example)
    dynamic = _dynamic(loss, example, ("time",) if ingraph else ())
    ep = export_program(loss, example, dynamic=dynamic)

    # other batch sizes (and horizons, with the advantage given) through the program and ORT
    other_shape = tuple(s + 3 for s in shape) if not ingraph else (shape[0] + 3, *shape[1:])
    other = _example(loss, nets, other_shape, seed=2, ingraph=ingraph)
    eager = loss(**other)
    got = ep.module()(*other.values())
    for k, a, b in zip(loss.out_keys, got, eager):
        assert torch.equal(a, b), k  # the same ops as eager

    sess = _export_checked(loss, example, tmp_path / "loss.onnx", dynamic=dynamic)
    assert [i.name for i in sess.get_inputs()] == names
    assert [o.name for o in sess.get_outputs()] == list(loss.out_keys)
    res = sess.run(None, {k: v.numpy() for k, v in other.items()})
    for k, a, b in zip(loss.out_keys, res, eager):
        assert_close(torch.from_numpy(a), b.detach(), "onnx", k)


def test_onnx_float64_exact(tmp_path):
    """Constants follow the input dtype: a float64 graph matches float64 eager to ~1e-12."""
    nets = Nets("normal", dtype=torch.float64)
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.1, entropy_coeff=0.01, normalize_advantage=True)
    example = _example(loss, nets, (8,), seed=1)
    sess = _export_checked(loss, example, tmp_path / "loss64.onnx", dtype="float64")
    assert all(i.type == "tensor(double)" for i in sess.get_inputs() if example[i.name].is_floating_point())
    other = _example(loss, nets, (11,), seed=3)
    eager = loss(**other)
    res = sess.run(None, {k: v.numpy() for k, v in other.items()})
    for k, a, b in zip(loss.out_keys, res, eager):
        assert a.dtype == b.detach().numpy().dtype, k
        assert_close(torch.from_numpy(a), b.detach(), "onnx", k)


def test_mc_entropy_noise_makes_export_reproducible():
    """With ``entropy_noise`` as an input the TanhNormal entropy is a function of the inputs."""
    nets = Nets("tanh")
    loss = ro.A2CLoss(nets.actor, nets.critic)
    example = _example(loss, nets, (8,), seed=1)
    a = loss(**example)
    b = loss(**example)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    other_noise = dict(example, entropy_noise=torch.randn_like(example["entropy_noise"]))
    assert not torch.equal(loss(**other_noise)[2], a[2])
