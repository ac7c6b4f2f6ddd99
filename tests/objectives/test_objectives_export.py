"""Every loss exports with ``torch.export`` and to ONNX (``dynamo=True``) with a dynamic batch,
and the artifacts match eager at other batch sizes (ONNX Runtime, CPU provider)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlexport.objectives as ro
from helpers import Nets, assert_close, make_data, quiet

quiet()


class Positional(nn.Module):
    """``forward(*tensors)`` in ``names`` order -> ``loss(**dict(zip(names, tensors)))``."""

    def __init__(self, loss, names):
        super().__init__()
        self.loss = loss
        self.names = list(names)

    def forward(self, *tensors):
        return self.loss(**dict(zip(self.names, tensors)))


def _example(loss, nets, shape, seed, ingraph=False):
    data = make_data(nets, shape, seed=seed, with_targets=not ingraph)
    if nets.kind == "tanh":
        g = torch.Generator().manual_seed(seed + 100)
        data["entropy_noise"] = torch.randn(getattr(loss, "samples_mc_entropy", 1), *shape, 2, generator=g, dtype=nets.dtype)
    if not ingraph:
        for k in ("next_observation", "next_reward", "next_done", "next_terminated"):
            data.pop(k)
    return {k: v for k, v in data.items() if k in loss.accepted_keys}


def _dynamic_shapes(loss, example, static=()):
    dims = loss.dynamic_dims(example)
    syms = {}
    shapes = []
    for name in example:
        spec = {}
        for d, label in dims.get(name, {}).items():
            if label in static:
                continue
            syms.setdefault(label, torch.export.Dim(label, min=2, max=1 << 20))
            spec[d] = syms[label]
        shapes.append(spec or None)
    return (tuple(shapes),)  # forward(*tensors): one var-positional argument


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
def test_torch_export_and_onnx_dynamic_batch(loss_name, kind, opts, shape, ingraph, tmp_path):
    import onnx
    import onnxruntime as ort

    nets = Nets(kind, shared=opts.get("separate_losses", False))
    loss = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    example = _example(loss, nets, shape, seed=1, ingraph=ingraph)
    names = list(example)
    module = Positional(loss, names).eval()
    static = ("time",) if ingraph else ()
    ep = torch.export.export(module, tuple(example.values()), dynamic_shapes=_dynamic_shapes(loss, example, static), strict=False)

    # other batch sizes (and horizons, with the advantage given) through the program and ORT
    other_shape = tuple(s + 3 for s in shape) if not ingraph else (shape[0] + 3, *shape[1:])
    other = _example(loss, nets, other_shape, seed=2, ingraph=ingraph)
    eager = loss(**other)
    got = ep.module()(*other.values())
    for k, a, b in zip(loss.out_keys, got, eager):
        assert torch.equal(a, b), k  # the same ops as eager

    path = tmp_path / "loss.onnx"
    onnx_program = torch.onnx.export(ep, tuple(example.values()), dynamo=True, input_names=names, output_names=list(loss.out_keys))
    onnx_program.save(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == names
    assert [o.name for o in sess.get_outputs()] == list(loss.out_keys)
    res = sess.run(None, {k: v.numpy() for k, v in other.items()})
    for k, a, b in zip(loss.out_keys, res, eager):
        assert_close(torch.from_numpy(a), b.detach(), "onnx", k)


def test_onnx_float64_exact(tmp_path):
    """Constants follow the input dtype: a float64 graph matches float64 eager to ~1e-12."""
    import onnxruntime as ort

    nets = Nets("normal", dtype=torch.float64)
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.1, entropy_coeff=0.01, normalize_advantage=True)
    example = _example(loss, nets, (8,), seed=1)
    names = list(example)
    ep = torch.export.export(Positional(loss, names), tuple(example.values()), dynamic_shapes=_dynamic_shapes(loss, example), strict=False)
    path = tmp_path / "loss64.onnx"
    torch.onnx.export(ep, tuple(example.values()), dynamo=True, input_names=names, output_names=list(loss.out_keys)).save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = _example(loss, nets, (11,), seed=3)
    eager = loss(**other)
    res = sess.run(None, {k: v.numpy() for k, v in other.items()})
    for k, a, b in zip(loss.out_keys, res, eager):
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
