"""The one test helper of the maths layers (tinygrad ``test_ops`` style): one tolerance table,
one comparison rule, one forward-and-backward check, and the references we did not write
(TorchRL 0.14.1 wrappers of the same weights, float64 step loops).

- :data:`TOL` / :func:`assert_close`: every numeric comparison in ``tests/modules``,
  ``tests/objectives`` and ``tests/value``.
- :func:`check`: ``ours(**inputs)`` vs ``ref(**inputs)``, values and the gradients of every
  floating input.
- Builders for the losses: :class:`Nets`, :func:`make_data`, :func:`to_td`, :func:`compare`.
- Float64 step loops for the estimators (:func:`gae`, :func:`td_lambda`, :func:`vtrace`, ...),
  written from the definitions one time step at a time (time at -2), sharing no code with
  ``rlexport.value``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch
from torch import nn

import rlexport.modules as rm

# --------------------------------------------------------------------------------------------
# One tolerance table, one rule
# --------------------------------------------------------------------------------------------
#: Relative tolerance ``(values, gradients)`` by what is compared. The absolute tolerance is the
#: relative one times ``max(1, max|expected|)``: an entry near zero is compared at the scale of
#: its tensor (a mean of O(1) terms that cancel to 0.02 is compared to 1e-6 in float32).
TOL: dict[object, tuple[float, float]] = {
    # the same formulas in another implementation (TorchRL 0.14.1, torch), per dtype
    torch.float32: (1e-6, 1e-6),
    torch.float64: (1e-10, 1e-10),
    # float64 against a float64 step loop of the same sums: rounding only
    "loop": (1e-12, 1e-12),
    # float32 results against a float64 reference
    "float32-vs-float64": (1e-4, 1e-4),
    # against TorchRL code that rounds a float64 computation's constants to float32 (its
    # estimators' ``(~done).int() * gamma``, its TanhNormal's Python-number bounds)
    "torchrl-float32-constants": (1e-5, 1e-5),
    # TanhNormal at saturated values (|tanh| clamped at 1 - resolution): log1p-atanh vs
    # torch.atanh, ill-conditioned there
    ("tanh", torch.float32): (2e-5, 1e-4),
    ("tanh", torch.float64): (1e-7, 1e-7),
    # ONNX Runtime's kernels against torch's
    ("onnx", torch.float32): (1e-5, 1e-5),
    ("onnx", torch.float64): (1e-12, 1e-12),
}


def tolerance(kind: object = None, dtype: torch.dtype | None = None) -> tuple[float, float]:
    """``TOL[kind]``, ``TOL[(kind, dtype)]`` or (no ``kind``) ``TOL[dtype]``."""
    if kind is None:
        return TOL[dtype]
    return TOL[kind] if kind in TOL else TOL[(kind, dtype)]


def _atol(rtol: float, expected) -> float:
    expected = torch.as_tensor(expected)
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    return rtol * max(scale, 1.0)


def assert_close(actual, expected, kind: object = None, what: str = "", *, grad: bool = False) -> None:
    """``actual`` equals ``expected`` (same shape) within :data:`TOL` (``kind``, else the
    dtype's row; ``grad`` picks the gradient column). Tuples compare element by element."""
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, kind, f"{what}[{i}]", grad=grad)
        return
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {list(actual.shape)} vs {list(expected.shape)}"
    if not expected.is_floating_point():
        assert torch.equal(actual, expected), f"{what}: {actual} vs {expected}"
        return
    rtol = tolerance(kind, expected.dtype)[1 if grad else 0]
    if actual.dtype != expected.dtype:
        actual, expected = actual.double(), expected.double()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=_atol(rtol, expected), msg=lambda m: f"{what}: {m}")


def quiet() -> None:
    warnings.filterwarnings("ignore")


# --------------------------------------------------------------------------------------------
# Forward and backward against a reference
# --------------------------------------------------------------------------------------------
def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for k in sorted(out) for t in _flat(out[k])]
    return [t for o in out for t in _flat(o)]


def check(
    ours: Callable[..., object],
    ref: Callable[..., object],
    inputs: Mapping[str, torch.Tensor],
    *,
    kind: object = None,
    grad: bool = True,
    grad_wrt: tuple[str, ...] | None = None,
    seed: int = 0,
) -> None:
    """Run ``ours(**inputs)`` and ``ref(**inputs)`` on separate leaf copies; compare every output
    (values, dtypes, shapes) and, when ``grad``, the gradients of ``sum(out * w)`` (fixed random
    ``w``) with respect to each floating input (or those named in ``grad_wrt``), all within
    :data:`TOL` (``kind``, else the inputs' dtype)."""
    names = [k for k, v in inputs.items() if v.is_floating_point() and (grad_wrt is None or k in grad_wrt)]

    def leaves():
        return {k: v.detach().clone().requires_grad_(grad and k in names) for k, v in inputs.items()}

    a, b = leaves(), leaves()
    out_a, out_b = _flat(ours(**a)), _flat(ref(**b))
    assert len(out_a) == len(out_b), (len(out_a), len(out_b))
    for i, (x, y) in enumerate(zip(out_a, out_b)):
        assert x.dtype == y.dtype, f"output {i}: dtype {x.dtype} vs reference {y.dtype}"
        assert_close(x, y, kind, f"output {i}")
    if not grad:
        return
    gen = torch.Generator().manual_seed(seed)
    diff = [i for i, x in enumerate(out_b) if x.is_floating_point() and x.requires_grad]
    assert diff, "no differentiable output"
    ws = [torch.randn(out_b[i].shape, generator=gen, dtype=out_b[i].dtype) for i in diff]
    la = sum((out_a[i] * w).sum() for i, w in zip(diff, ws))
    lb = sum((out_b[i] * w).sum() for i, w in zip(diff, ws))
    ga = torch.autograd.grad(la, [a[k] for k in names], allow_unused=True)
    gb = torch.autograd.grad(lb, [b[k] for k in names], allow_unused=True)
    for k, x, y in zip(names, ga, gb):
        x = torch.zeros_like(a[k]) if x is None else x
        y = torch.zeros_like(b[k]) if y is None else y
        assert_close(x, y, kind, f"grad wrt {k!r}", grad=True)


# --------------------------------------------------------------------------------------------
# Losses: the same weights wrapped by TorchRL 0.14.1 and by rlexport, the same data both ways
# --------------------------------------------------------------------------------------------
KINDS = ("categorical", "normal", "tanh")
OBS, ACT, NCAT, HIDDEN = 4, 2, 3, 8
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


class StandInValue(nn.Module):
    """The rlexport.modules.ValueOperator interface: in_keys, called with keywords → [*batch, 1]."""

    in_keys = ["observation"]
    out_keys = ["state_value"]

    def __init__(self, net: nn.Module):
        super().__init__()
        self.module = net

    def forward(self, observation):
        return self.module(observation)


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
        buf.data = torch.as_tensor(value, dtype=torch.float64).clone()


def grads(outputs: dict[str, torch.Tensor], params: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Gradient of every ``loss_*`` output (summed) with respect to every parameter."""
    out = {}
    for k, v in outputs.items():
        if not k.startswith("loss_") or not v.requires_grad:
            continue
        gs = torch.autograd.grad(v.sum(), params, retain_graph=True, allow_unused=True)
        out[k] = [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]
    return out


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
            assert_close(a, b, dtype, f"d {k} / d param[{i}]", grad=True)


# --------------------------------------------------------------------------------------------
# Composite actions: three heads (a choice, a Gaussian, a tanh-Gaussian) on one network
# --------------------------------------------------------------------------------------------
HEADS = {"move": rm.Categorical, "steer": rm.IndependentNormal, "throttle": rm.TanhNormal}


class CompositeNets:
    """A composite actor (heads :data:`HEADS`, parameters split from one linear layer) and a
    critic, wrapped by rlexport and by TorchRL 0.14.1 (``CompositeDistribution`` with
    ``name_map={h: ("action", h)}``, non-aggregated log-probs)."""

    kind = "composite"

    def __init__(self, dtype=torch.float32, seed: int = 0, heads: Mapping[str, type] | None = None):
        torch.manual_seed(seed)
        self.dtype = dtype
        self.heads = dict(HEADS if heads is None else heads)
        sizes = {h: (c, NCAT if c in (rm.Categorical, rm.OneHotCategorical) else ACT) for h, c in self.heads.items()}
        self.extractor = rm.CompositeParamExtractor(sizes)
        self.actor_module = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, self.extractor.width),
                                          self.extractor).to(dtype)
        self.critic_module = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1)).to(dtype)
        self.actor = rm.CompositeActor(self.actor_module, ["observation"], self.heads)
        self.critic = rm.ValueOperator(self.critic_module, ["observation"])

    def params(self) -> list[nn.Parameter]:
        return [*self.actor_module.parameters(), *self.critic_module.parameters()]

    def torchrl(self):
        from tensordict.nn import CompositeDistribution, TensorDictModule, set_composite_lp_aggregate
        from torchrl.modules import IndependentNormal, ProbabilisticActor, TanhNormal, ValueOperator

        set_composite_lp_aggregate(False).set()
        theirs = {rm.Categorical: torch.distributions.Categorical, rm.IndependentNormal: IndependentNormal,
                  rm.TanhNormal: TanhNormal}
        out_keys = [("params", h, p) for h, c in self.heads.items() for p in rm.composite.DEFAULT_PARAM_NAMES[c]]
        actor = ProbabilisticActor(
            TensorDictModule(self.actor_module, ["observation"], out_keys),
            in_keys=["params"],
            out_keys=[("action", h) for h in self.heads],
            distribution_class=CompositeDistribution,
            distribution_kwargs={"distribution_map": {h: theirs[c] for h, c in self.heads.items()},
                                 "name_map": {h: ("action", h) for h in self.heads}},
            return_log_prob=True,
        )
        return actor, ValueOperator(self.critic_module, in_keys=["observation"])

    def nested_keys(self) -> dict[str, tuple[str, ...]]:
        """rlexport's flat keyword -> TorchRL's nested key, for the composite entries."""
        keys = {}
        for h, c in self.heads.items():
            keys[f"action_{h}"] = ("action", h)
            keys[f"action_{h}_log_prob"] = ("action", f"{h}_log_prob")
            for p in rm.composite.DEFAULT_PARAM_NAMES[c]:
                keys[f"params_{h}_{p}"] = ("params", h, p)
        return keys


def make_composite_data(nets: CompositeNets, batch_shape=(6,), seed: int = 1, with_targets: bool = True) -> dict[str, torch.Tensor]:
    """:func:`make_data` for a composite actor: per-head actions near the policy, per-head and
    aggregated behaviour log-probs, stored parameters of every head, rollout signals."""
    g = torch.Generator().manual_seed(seed)
    dt, shape = nets.dtype, tuple(batch_shape)

    def randn(*s):
        return torch.randn(*s, generator=g, dtype=dt)

    obs = randn(*shape, OBS)
    data = {"observation": obs, "next_observation": randn(*shape, OBS)}
    with torch.no_grad():
        dist = nets.actor.get_dist(observation=obs)
        for h, c in nets.heads.items():
            head = dist[h]
            if c in (rm.Categorical, rm.OneHotCategorical):
                action = torch.randint(NCAT, shape, generator=g)
                data[f"params_{h}_logits"] = randn(*shape, NCAT)
            else:
                action = head.loc + head.scale * randn(*shape, ACT)
                if c is rm.TanhNormal:
                    action = torch.tanh(action) * 0.999
                data[f"params_{h}_loc"] = randn(*shape, ACT) * 0.5
                data[f"params_{h}_scale"] = torch.rand(*shape, ACT, generator=g, dtype=dt) + 0.5
            data[f"action_{h}"] = action
            data[f"action_{h}_log_prob"] = head.log_prob(action) + 0.2 * randn(*shape)
    data["sample_log_prob"] = sum(data[f"action_{h}_log_prob"] for h in nets.heads)
    data["next_reward"] = randn(*shape, 1)
    data["next_done"] = torch.rand(*shape, 1, generator=g) < 0.2
    data["next_terminated"] = data["next_done"] & (torch.rand(*shape, 1, generator=g) < 0.5)
    if with_targets:
        data["advantage"] = randn(*shape, 1)
        data["value_target"] = randn(*shape, 1)
        data["state_value"] = randn(*shape, 1)
    return data


def composite_td(nets: CompositeNets, data: dict[str, torch.Tensor], batch_shape, aggregated: bool = False):
    """The TensorDict TorchRL reads: nested composite keys; the per-head log-probs, or (with
    ``aggregated``) only ``sample_log_prob``."""
    nested = nets.nested_keys()
    flat = {k: v for k, v in data.items() if k not in nested and k != "sample_log_prob"}
    td = to_td(flat, batch_shape)
    for k, key in nested.items():
        if aggregated and k.endswith("_log_prob"):
            continue
        td.set(key, data[k])
    if aggregated:
        td.set("sample_log_prob", data["sample_log_prob"])
    return td


# --------------------------------------------------------------------------------------------
# Estimators: float64 step loops and rollout data
# --------------------------------------------------------------------------------------------
def _g(x, t):
    """Per-step coefficient at step t (scalar tensors and floats pass through)."""
    if isinstance(x, torch.Tensor) and x.ndim > 0:
        return x[..., t, :]
    return x


def gae(gamma, lmbda, v, nv, r, done, term):
    T = r.shape[-2]
    adv = torch.zeros_like(r)
    nxt = torch.zeros_like(r[..., 0, :])
    for t in reversed(range(T)):
        g, l = _g(gamma, t), _g(lmbda, t)
        delta = r[..., t, :] + g * (~term[..., t, :]).to(r.dtype) * nv[..., t, :] - v[..., t, :]
        nxt = delta + g * l * (~done[..., t, :]).to(r.dtype) * nxt
        adv[..., t, :] = nxt
    return adv, adv + v


def td_lambda(gamma, lmbda, nv, r, done, term):
    T = r.shape[-2]
    out = torch.zeros_like(r)
    G = None
    for t in reversed(range(T)):
        g, l = _g(gamma, t), _g(lmbda, t)
        boot = (~term[..., t, :]).to(r.dtype) * nv[..., t, :]
        follow = boot if (t == T - 1) else torch.where(done[..., t, :], boot, G)
        G = r[..., t, :] + g * ((1 - l) * boot + l * follow)
        out[..., t, :] = G
    return out


def td_lambda_nonrolling(gamma, lmbda, nv, r, done, term):
    """G_k with (gamma_k, lmbda_k) used for the whole of its future."""
    T = r.shape[-2]
    out = torch.zeros_like(r)
    for k in range(T):
        g, l = _g(gamma, k), _g(lmbda, k)
        G = None
        for t in reversed(range(k, T)):
            boot = (~term[..., t, :]).to(r.dtype) * nv[..., t, :]
            follow = boot if t == T - 1 else torch.where(done[..., t, :], boot, G)
            G = r[..., t, :] + g * ((1 - l) * boot + l * follow)
        out[..., k, :] = G
    return out


def vtrace(gamma, log_pi, log_mu, v, nv, r, done, term, rho_thresh=1.0, c_thresh=1.0):
    T = r.shape[-2]
    rho = (log_pi - log_mu).exp()
    rb, cb = rho.clamp_max(rho_thresh), rho.clamp_max(c_thresh)
    vs = torch.zeros_like(r)
    acc = torch.zeros_like(r[..., 0, :])
    for t in reversed(range(T)):
        g = _g(gamma, t)
        delta = rb[..., t, :] * (r[..., t, :] + g * (~term[..., t, :]).to(r.dtype) * nv[..., t, :] - v[..., t, :])
        acc = delta + g * (~done[..., t, :]).to(r.dtype) * cb[..., t, :] * acc
        vs[..., t, :] = acc + v[..., t, :]
    adv = torch.zeros_like(r)
    for t in range(T):
        g = _g(gamma, t)
        nxt = nv[..., t, :] if t == T - 1 else torch.where(done[..., t, :], nv[..., t, :], vs[..., t + 1, :])
        adv[..., t, :] = rb[..., t, :] * (r[..., t, :] + g * (~term[..., t, :]).to(r.dtype) * nxt - v[..., t, :])
    return adv, vs


def reward2go(r, done, gamma):
    T = r.shape[-2]
    out = torch.zeros_like(r)
    acc = torch.zeros_like(r[..., 0, :])
    for t in reversed(range(T)):
        acc = r[..., t, :] + _g(gamma, t) * (~done[..., t, :]).to(r.dtype) * acc
        out[..., t, :] = acc
    return out


def recurrence(x, a):
    T = x.shape[-2]
    y = torch.zeros_like(x)
    acc = torch.zeros_like(x[..., 0, :])
    for t in reversed(range(T)):
        acc = x[..., t, :] + a[..., t, :] * acc
        y[..., t, :] = acc
    return y


DONE_PATTERNS = ("random", "none", "all", "first", "last")


def flags(shape, pattern, gen):
    """(done, terminated): terminated ⊂ done; truncations are done & ~terminated."""
    if pattern == "random":
        done = torch.rand(shape, generator=gen) < 0.25
    elif pattern == "none":
        done = torch.zeros(shape, dtype=torch.bool)
    elif pattern == "all":
        done = torch.ones(shape, dtype=torch.bool)
    else:
        done = torch.zeros(shape, dtype=torch.bool)
        done[..., 0 if pattern == "first" else -1, :] = True
    term = done & (torch.rand(shape, generator=gen) < 0.5)
    return done, term


def data(shape, dtype=torch.float64, pattern="random", seed=0):
    gen = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3))
    done, term = flags(shape, pattern, gen)
    return r, v, nv, done, term
