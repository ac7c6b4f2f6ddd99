"""Shared builders for the objectives tests: the same nn.Module weights wrapped by TorchRL 0.14.1
and by rlexport, the same data as a TensorDict and as keyword tensors, and comparisons of every
output and every parameter gradient."""

from __future__ import annotations

import warnings

import torch
from torch import nn

import rlexport.modules as rm

KINDS = ("categorical", "normal", "tanh")
OBS, ACT, NCAT, HIDDEN = 4, 2, 3, 8
# Relative tolerance, per tensor: elementwise ``rtol`` plus ``rtol * max|expected|`` absolute
# (a gradient entry near zero is compared at the scale of its tensor, at least 1: a mean of
# O(1) terms that cancel to 0.02 is compared to 1e-6 absolute in float32).
RTOL = {torch.float32: 1e-6, torch.float64: 1e-10}
# TorchRL's estimator holds gamma/lmbda in float32 buffers: dyadic values keep float64 exact.
EXACT_GAE = dict(gamma=0.9921875, lmbda=0.9375)


class Nets:
    """Actor/critic ``nn.Module``s (optionally on a shared trunk) and both wrappers of each."""

    def __init__(self, kind: str, dtype=torch.float32, shared: bool = False, seed: int = 0):
        torch.manual_seed(seed)
        self.kind, self.dtype, self.shared = kind, dtype, shared
        out = NCAT if kind == "categorical" else 2 * ACT
        if shared:
            trunk = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh())
            actor_body = nn.Sequential(trunk, nn.Linear(HIDDEN, out))
            self.critic_module = nn.Sequential(trunk, nn.Linear(HIDDEN, 1))
        else:
            actor_body = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, out))
            self.critic_module = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))
        if kind == "categorical":
            self.actor_module, self.param_keys = actor_body, ["logits"]
        else:
            self.actor_module, self.param_keys = nn.Sequential(actor_body, rm.NormalParamExtractor()), ["loc", "scale"]
        self.actor_module.to(dtype)
        self.critic_module.to(dtype)
        dist = {"categorical": rm.Categorical, "normal": rm.IndependentNormal, "tanh": rm.TanhNormal}[kind]
        self.actor = rm.ProbabilisticActor(self.actor_module, ["observation"], self.param_keys, distribution_class=dist)
        self.critic = rm.ValueOperator(self.critic_module, ["observation"])

    def params(self) -> list[nn.Parameter]:
        seen, out = set(), []
        for p in [*self.actor_module.parameters(), *self.critic_module.parameters()]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def torchrl(self):
        from tensordict.nn import TensorDictModule
        from torchrl.modules import IndependentNormal, ProbabilisticActor, TanhNormal, ValueOperator

        dist = {"categorical": torch.distributions.Categorical, "normal": IndependentNormal, "tanh": TanhNormal}[self.kind]
        actor = ProbabilisticActor(
            TensorDictModule(self.actor_module, ["observation"], list(self.param_keys)),
            in_keys=list(self.param_keys),
            distribution_class=dist,
            return_log_prob=True,
        )
        critic = ValueOperator(self.critic_module, in_keys=["observation"])
        return actor, critic


def make_data(nets: Nets, batch_shape=(6,), seed: int = 1, with_targets: bool = True) -> dict[str, torch.Tensor]:
    """Keyword tensors for every loss: observations, behaviour actions and log-probs near the
    current policy (so some ratios clip), stored distribution parameters, rollout signals."""
    g = torch.Generator().manual_seed(seed)
    dt = nets.dtype
    shape = tuple(batch_shape)

    def randn(*s):
        return torch.randn(*s, generator=g, dtype=dt)

    obs = randn(*shape, OBS)
    next_obs = randn(*shape, OBS)
    with torch.no_grad():
        dist = nets.actor.get_dist(observation=obs)
        if nets.kind == "categorical":
            action = torch.randint(NCAT, shape, generator=g)
        elif nets.kind == "normal":
            action = dist.loc + dist.scale * randn(*shape, ACT)
        else:
            action = torch.tanh(dist.loc + dist.scale * randn(*shape, ACT)) * 0.999
        log_prob = dist.log_prob(action)
    data = {
        "observation": obs,
        "action": action,
        "sample_log_prob": log_prob + 0.3 * randn(*shape),
        "next_observation": next_obs,
        "next_reward": randn(*shape, 1),
        "next_done": torch.rand(*shape, 1, generator=g) < 0.2,
    }
    data["next_terminated"] = data["next_done"] & (torch.rand(*shape, 1, generator=g) < 0.5)
    if nets.kind == "categorical":
        data["logits"] = randn(*shape, NCAT)
    else:
        data["loc"] = randn(*shape, ACT) * 0.5
        data["scale"] = torch.rand(*shape, ACT, generator=g, dtype=dt) + 0.5
    if with_targets:
        data["advantage"] = randn(*shape, 1)
        data["value_target"] = randn(*shape, 1)
        data["state_value"] = randn(*shape, 1)
    return data


def to_td(data: dict[str, torch.Tensor], batch_shape, log_prob_key: str = "sample_log_prob"):
    from tensordict import TensorDict

    td = TensorDict({}, batch_size=list(batch_shape))
    for k, v in data.items():
        if k.startswith("next_"):
            td.set(("next", k[5:]), v)
        elif k == "sample_log_prob":
            td.set(log_prob_key, v)
        else:
            td.set(k, v)
    return td


def mc_noise(nets: Nets, batch_shape, samples: int = 1, seed: int = 11) -> torch.Tensor:
    """The standard-normal draws TorchRL makes after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return torch.randn(samples, *batch_shape, ACT, dtype=nets.dtype)


def exact_torchrl_buffers(tl_loss, **values) -> None:
    """TorchRL keeps coefficients in float32 buffers; in float64 parity tests give them the exact
    float64 values rlexport uses (``0.01`` as float32 is 0.009999999776...)."""
    for name, value in values.items():
        if value is None or not isinstance(getattr(tl_loss, name, None), torch.Tensor):
            continue
        buf = getattr(tl_loss, name)
        buf.data = torch.tensor(value, dtype=torch.float64)


def grads(outputs: dict[str, torch.Tensor], params: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Gradient of every ``loss_*`` output (summed) with respect to every parameter."""
    out = {}
    for k, v in outputs.items():
        if not k.startswith("loss_") or not v.requires_grad:
            continue
        gs = torch.autograd.grad(v.sum(), params, retain_graph=True, allow_unused=True)
        out[k] = [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]
    return out


def assert_close(actual, expected, dtype, what: str = "") -> None:
    rtol = RTOL[dtype]
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    atol = rtol * max(scale, 1.0)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def compare(ours: dict[str, torch.Tensor], theirs, params, dtype, skip=()) -> None:
    """Every output TorchRL wrote is an output of ours, equal; then every gradient."""
    their_keys = [k for k in theirs.keys()]
    our_keys = [k for k in ours if k in their_keys]
    assert our_keys == their_keys, f"output order/set differs: ours {list(ours)} vs TorchRL {their_keys}"
    for k in their_keys:
        if k in skip:
            continue
        assert_close(ours[k], theirs[k].to(ours[k].dtype), dtype, k)
    g_ours = grads(ours, params)
    g_theirs = grads({k: theirs[k] for k in their_keys}, params)
    assert set(g_ours) == set(g_theirs), (set(g_ours), set(g_theirs))
    for k in g_ours:
        for i, (a, b) in enumerate(zip(g_ours[k], g_theirs[k])):
            assert_close(a, b, dtype, f"d {k} / d param[{i}]")


def quiet():
    warnings.filterwarnings("ignore")
