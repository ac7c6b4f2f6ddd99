"""Each distribution's log_prob + entropy exports through ``rlexport.export`` (program, dynamic
batch; ONNX via dynamo), passes ``validate``, and runs in onnxruntime's CPU provider in float32 and float64, matching eager."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_close
from torch import nn


from rlexport.modules import (
    Categorical,
    Delta,
    IndependentNormal,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    TanhNormal,
)
from rlexport.export import export_onnx, export_program
from rlexport.validate import validate

N = 3


class CategoricalLP(nn.Module):
    def forward(self, logits, value):
        d = Categorical(logits=logits)
        return d.log_prob(value), d.entropy(), d.mode


class OneHotLP(nn.Module):
    def forward(self, logits, value):
        d = OneHotCategorical(logits=logits)
        return d.log_prob(value), d.entropy(), d.mode


class NormalLP(nn.Module):
    def forward(self, loc, scale, value, noise):
        d = IndependentNormal(loc, scale, tanh_loc=True, upscale=2.0)
        return d.log_prob(value), d.entropy(), d.rsample(noise=noise)


class TanhNormalLP(nn.Module):
    """Monte-Carlo entropy from explicit noise (no closed form)."""

    def forward(self, loc, scale, value, noise):
        d = TanhNormal(loc, scale, low=-2.0, high=3.0, tanh_loc=True, upscale=3.0)
        action, lp = d.rsample_and_log_prob(noise=noise)
        return d.log_prob(value), -lp, action, d.deterministic_sample


class DeltaLP(nn.Module):
    def forward(self, param, value):
        d = Delta(param)
        return d.log_prob(value), d.mode


def _inputs(name, batch, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if name in ("categorical", "onehot"):
        logits = torch.randn(batch, N, generator=g, dtype=dtype) * 2
        idx = torch.randint(0, N, (batch,), generator=g)
        value = idx if name == "categorical" else torch.nn.functional.one_hot(idx, N)
        return (logits, value)
    if name == "delta":
        param = torch.randn(batch, N, generator=g, dtype=dtype)
        value = param.clone()
        value[::2] += 1.0
        return (param, value)
    loc = torch.randn(batch, N, generator=g, dtype=dtype) * 2
    scale = torch.rand(batch, N, generator=g, dtype=dtype) + 0.2
    if name == "tanh":
        value = torch.rand(batch, N, generator=g, dtype=dtype) * 5 - 2
        value[0, 0] = 3.0  # exactly at the bound
    else:
        value = torch.randn(batch, N, generator=g, dtype=dtype)
    noise = torch.randn(batch, N, generator=g, dtype=dtype)
    return (loc, scale, value, noise)


MODULES = {
    "categorical": CategoricalLP,
    "onehot": OneHotLP,
    "normal": NormalLP,
    "tanh": TanhNormalLP,
    "delta": DeltaLP,
}


def _run_ort(model, args):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
    return sess.run(None, feeds)


def _compare(got, want, dtype, names):
    assert len(got) == len(want) == len(names)
    for name, g, w in zip(names, got, want):
        w = w.detach().numpy()
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape, g.dtype, w.dtype)
        assert_close(torch.from_numpy(g), torch.from_numpy(w), "onnx", name)


class Policy(nn.Module):
    """A TanhNormal actor sampling from explicit noise, returning (action, log_prob)."""

    def __init__(self, dtype):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2 * N), NormalParamExtractor())
        for p in net.parameters():  # moderate weights: unsaturated actions (see note in the test)
            nn.init.normal_(p, std=0.3, generator=g)
        self.actor = ProbabilisticActor(net.to(dtype), ["observation"], ["loc", "scale"], TanhNormal,
                                        {"low": -2.0, "high": 2.0}, return_log_prob=True)

    def forward(self, observation, noise):
        return self.actor(observation=observation, noise=noise)


class Everything(nn.Module):
    """Every distribution module and the actor in one graph: one export per dtype keeps the
    folder fast (an ONNX export costs seconds)."""

    def __init__(self, dtype):
        super().__init__()
        self.parts = nn.ModuleDict({k: cls() for k, cls in MODULES.items()})
        self.policy = Policy(dtype)

    def forward(self, *args):
        outs, i = [], 0
        for name, part in self.parts.items():
            n = ARITY[name]
            outs.extend(part(*args[i:i + n]))
            i += n
        outs.extend(self.policy(*args[i:i + 2]))
        return tuple(outs)


ARITY = {"categorical": 2, "onehot": 2, "normal": 4, "tanh": 4, "delta": 2}
NAMES = (
    [f"categorical.{k}" for k in ("log_prob", "entropy", "mode")]
    + [f"onehot.{k}" for k in ("log_prob", "entropy", "mode")]
    + [f"normal.{k}" for k in ("log_prob", "entropy", "rsample")]
    + [f"tanh.{k}" for k in ("log_prob", "mc_entropy", "rsample", "deterministic_sample")]
    + [f"delta.{k}" for k in ("log_prob", "mode")]
    + ["actor.action", "actor.log_prob"]
)


def _all_inputs(batch, dtype, seed):
    args = []
    for k in MODULES:
        args.extend(_inputs(k, batch, dtype, seed))
    g = torch.Generator().manual_seed(seed + 100)
    args += [torch.randn(batch, 5, generator=g, dtype=dtype), torch.randn(batch, N, generator=g, dtype=dtype)]
    return tuple(args)


class BothDtypes(nn.Module):
    """float32 and float64 copies side by side: a single ONNX export (seconds each) per run."""

    def __init__(self):
        super().__init__()
        self.f32, self.f64 = Everything(torch.float32), Everything(torch.float64)
        self.n = len(_all_inputs(2, torch.float32, 0))

    def forward(self, *args):
        return self.f32(*args[: self.n]) + self.f64(*args[self.n:])


def _both_inputs(batch, seed):
    return _all_inputs(batch, torch.float32, seed) + _all_inputs(batch, torch.float64, seed)


class Keyword(nn.Module):
    """``BothDtypes`` called with keyword tensors ``x0, x1, ...`` (what ``rlexport.export``
    takes), its outputs named ``f32_categorical_log_prob``, ..."""

    def __init__(self):
        super().__init__()
        self.both = BothDtypes()
        self.out_keys = [f"{p}_{n.replace('.', '_')}" for p in ("f32", "f64") for n in NAMES]

    def forward(self, **inputs):
        return self.both(*inputs.values())


def _named(args):
    return {f"x{i}": a for i, a in enumerate(args)}


def test_distributions_and_actor_export(tmp_path):
    """``rlexport.export`` with a dynamic batch: the program matches eager bit for bit, the ONNX
    artifact (dynamo) passes ``validate`` and runs in onnxruntime's CPU provider in float32 and
    float64 at another batch size than the example's.

    Note: the actor's log-prob is that of its own (tanh-squashed) action through the inverse
    ``atanh``; with saturated actions this round trip is ill-conditioned and runtimes differ
    (TorchRL's reason for ``rsample_and_log_prob``). Weights are kept moderate here.
    """
    module = Keyword()
    # The artifact's golden sample (rows of its example, float64 eager reference) keeps the
    # TanhNormal values off the bound, where float32 and float64 log-probs part; the bound itself
    # is checked below in ORT against float32 eager, at batch 7.
    example = _named(_both_inputs(4, 0))
    for prefix in (0, len(example) // 2):
        tanh_value = f"x{prefix + ARITY['categorical'] + ARITY['onehot'] + ARITY['normal'] + 2}"
        example[tanh_value] = example[tanh_value].clamp(-1.5, 2.5)
    dynamic = {k: {0: "batch"} for k in example}
    ep = export_program(module, example, dynamic=dynamic)
    other = _both_inputs(7, 1)
    eager = module(**_named(other))
    names = [f"f32/{n}" for n in NAMES] + [f"f64/{n}" for n in NAMES]
    assert len(eager) == len(names)
    for name, e, x in zip(names, eager, ep.module()(*other)):
        torch.testing.assert_close(x, e, rtol=0, atol=0, msg=name)  # the same ops: bit for bit
    for prefix in ("f32", "f64"):
        lp = eager[names.index(f"{prefix}/tanh.log_prob")]
        assert torch.isfinite(lp).all()  # a value exactly at the bound is clamped, as TorchRL

    path = export_onnx(module, example, tmp_path / "dists.onnx", dynamic=dynamic)
    report = validate(path)
    assert report.passed, report.rows
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Softplus", "Atanh", "RandomNormal", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
    got = _run_ort(str(path), other)
    k = len(NAMES)
    _compare(got[:k], eager[:k], torch.float32, NAMES)
    _compare(got[k:], eager[k:], torch.float64, NAMES)
