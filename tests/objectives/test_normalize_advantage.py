"""``normalize_advantage``: TorchRL's rule (standardise only when the advantage has more than one
element, counted over every dim whatever ``normalize_advantage_exclude_dims``) in eager against
TorchRL 0.14.1 at batch 1 and larger, and in-graph with a dynamic batch (``rlexport.export`` program
and ONNX artifact, validated, then ONNX Runtime at batch 1, 7, 64 against eager)."""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
from helpers import Nets, assert_close, compare, make_data, quiet
from rlexport.export import export_program
from test_objectives_export import _dynamic, _export_checked
from test_parity import run_pair

quiet()

PPO_LOSSES = ("PPOLoss", "ClipPPOLoss", "KLPENPPOLoss")
# (options, batch shape): batch 1 (one element: no standardisation) and larger; with
# exclude_dims TorchRL still counts every element ([1, 4] excluding dim 0: 4 > 1, standardised
# along dim 1; [1, 1]: one element, left as is).
NORM_CASES = [
    ({"normalize_advantage": True}, (1,)),
    ({"normalize_advantage": True}, (5,)),
    ({"normalize_advantage": True}, (1, 1)),
    ({"normalize_advantage": True, "normalize_advantage_exclude_dims": (0,)}, (1, 4)),
    ({"normalize_advantage": True, "normalize_advantage_exclude_dims": (0,)}, (1, 1)),
    ({"normalize_advantage": True, "normalize_advantage_exclude_dims": (-2,)}, (3, 4)),
]


@pytest.mark.parametrize("loss_name", PPO_LOSSES)
@pytest.mark.parametrize("opts,shape", NORM_CASES, ids=[f"{'excl' if len(o) > 1 else 'all'}-{'x'.join(map(str, s))}" for o, s in NORM_CASES])
def test_eager_matches_torchrl(loss_name, opts, shape):
    mine, theirs, nets = run_pair(loss_name, opts, "normal", torch.float32, shape, False, False)
    for k, v in mine.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            assert torch.isfinite(v).all(), k
    compare(mine, theirs, nets.params(), torch.float32)


def test_batch_one_is_not_standardised():
    """One element: the loss equals the un-normalised loss (A2C, an rlexport extension, too)."""
    for name in ("A2CLoss", "ClipPPOLoss"):
        nets = Nets("categorical")
        on = getattr(ro, name)(nets.actor, nets.critic, normalize_advantage=True)
        off = getattr(ro, name)(nets.actor, nets.critic)
        for shape, same in (((1,), True), ((1, 1), True), ((6,), False)):
            data = make_data(nets, shape, seed=3)
            kw = {k: v for k, v in data.items() if k in on.accepted_keys}
            a, b = on(**kw)[0], off(**kw)[0]
            assert torch.isfinite(a).all()
            assert torch.equal(a, b) == same, (name, shape)


@pytest.mark.parametrize("loss_name,kind,opts,tail", [
    ("ClipPPOLoss", "normal", {"normalize_advantage": True, "clip_value": 0.2}, ()),
    ("A2CLoss", "categorical", {"normalize_advantage": True}, ()),
    ("PPOLoss", "tanh", {"normalize_advantage": True, "normalize_advantage_exclude_dims": (0,)}, (3,)),
])
def test_onnx_dynamic_batch_matches_eager_at_batch_1(loss_name, kind, opts, tail, tmp_path):
    nets = Nets(kind)
    loss = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)

    def example(b, seed):
        data = make_data(nets, (b, *tail), seed=seed)
        if kind == "tanh":
            g = torch.Generator().manual_seed(seed + 100)
            data["entropy_noise"] = torch.randn(1, b, *tail, 2, generator=g)
        return {k: v for k, v in data.items() if k in loss.accepted_keys}

    ex = example(8, 1)
    dynamic = _dynamic(loss, ex, ("time",))  # the batch dim of every input (batch 1 is legal)
    ep = export_program(loss, ex, dynamic=dynamic)
    sess = _export_checked(loss, ex, tmp_path / "loss.onnx", dynamic=dynamic)
    assert isinstance(sess.get_inputs()[0].shape[0], str), "batch must be dynamic"
    for b in (1, 7, 64):
        other = example(b, 10 + b)
        eager = loss(**other)
        got = ep.module()(*other.values())
        res = sess.run(None, {k: v.numpy() for k, v in other.items()})
        for k, e, g, r in zip(loss.out_keys, eager, got, res):
            assert torch.isfinite(e).all(), (b, k)
            assert torch.equal(g, e), f"program b={b} {k}"  # the same ops as eager
            assert_close(torch.from_numpy(r), e.detach(), "onnx", f"ORT b={b} {k}")
