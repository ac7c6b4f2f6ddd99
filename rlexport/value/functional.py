"""Value estimators as tensor functions: TorchRL 0.14.1's ``torchrl.objectives.value.functional``.

Same names, argument names and order, defaults and return values as TorchRL; every function is
one :func:`~rlexport.value.scan.reverse_linear_recurrence` plus elementwise work, so it has no
Python loop over time, no ``.item()`` and no data-dependent control flow, and exports with a
dynamic batch and time axis.

Shapes: every tensor is ``[*batch, T, F]`` with the time axis at ``time_dim`` (default ``-2``);
rewards, values and flags usually carry ``F = 1``.

Semantics of the flags (both ``torch.bool``):

* ``done`` (terminated or truncated) **cuts the recursion**: nothing flows from step ``t+1``
  into step ``t`` when ``done[t]``;
* ``terminated`` **masks the bootstrap**: ``next_state_value[t]`` counts only when
  ``terminated[t]`` is false (it is selected away, so a NaN there does no harm).
  ``terminated`` defaults to ``done``.

The last step of the batch is treated as a truncation: returns bootstrap from
``next_state_value[..., T-1, :]``.

``gamma``/``lmbda``: a Python float, a one-element tensor, or (where TorchRL accepts it) a tensor
of the reward's shape holding one value per step. Constants are made in the input dtype, so a
float64 call is float64 throughout (TorchRL's ``(~done).int() * gamma`` rounds the discount to
float32; these functions agree with a float64 step loop to ~1e-14).
"""

from __future__ import annotations


import torch

from rlexport.inputs import check_option, check_same_shape, check_tensor, constant_like, normalize_dim
from rlexport.value.scan import DEFAULT_MAX_STEPS, reverse_linear_recurrence

__all__ = [
    "generalized_advantage_estimate",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_return_estimate",
    "td1_advantage_estimate",
    "td_lambda_return_estimate",
    "td_lambda_advantage_estimate",
    "vtrace_advantage_estimate",
    "reward2go",
]


# --------------------------------------------------------------------------------------------
# input handling


def _check_inputs(owner: str, floats: dict, flags: dict) -> None:
    for name, value in floats.items():
        check_tensor(owner, name, value, floating=True)
    for name, value in flags.items():
        check_tensor(owner, name, value, boolean=True)
    check_same_shape(owner, {**floats, **flags})
    first = next(iter(floats.values()))
    for name, value in floats.items():
        if value.dtype != first.dtype:
            raise TypeError(
                f"{owner}: input {name!r} has dtype {value.dtype} but {next(iter(floats))!r} has dtype "
                f"{first.dtype}; they must match"
            )


def _time_axis(owner: str, time_dim: int, like: torch.Tensor) -> int:
    dim = normalize_dim(owner, "time_dim", time_dim, like.ndim)
    T = like.shape[dim]
    if isinstance(T, int) and T == 0:
        raise ValueError(
            f"{owner}: the time axis (time_dim={time_dim}) is empty in shape {list(like.shape)}; T must be >= 1"
        )
    return dim


#: The range each coefficient must lie in: finite, ``gamma``/``lmbda`` in [0, 1], the V-trace
#: thresholds > 0. Python numbers are checked on every call, the estimator modules' values at
#: construction; a tensor given per call is not looked at (that would be data-dependent).
COEF_BOUNDS = {
    "gamma": dict(low=0.0, high=1.0),
    "lmbda": dict(low=0.0, high=1.0),
    "rho_thresh": dict(low=0.0, low_open=True),
    "c_thresh": dict(low=0.0, low_open=True),
}


def _coef(owner: str, name: str, value, like: torch.Tensor, *, per_step: bool = True) -> torch.Tensor:
    """``gamma``/``lmbda``/thresholds as a tensor of ``like``'s dtype: scalar, or per step.

    A Python number must lie in :data:`COEF_BOUNDS`; a tensor's values are not looked at (that
    would be a data-dependent check): a non-finite tensor gives non-finite estimates, in eager
    and graphs alike.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{owner}: {name} must be a float or a tensor, got {type(value).__name__}")
    # Scalars become [1, ..., 1] of ``like``'s rank, not 0-d: ONNX Runtime's CPU kernels
    # broadcast a same-rank operand much faster than a 0-d one (benchmarks/estimators.py's
    # notes); torch computes the same numbers either way.
    ones = (1,) * like.ndim
    if not isinstance(value, torch.Tensor):
        check_option(owner, name, float(value), **COEF_BOUNDS[name])
        return constant_like(float(value), like).reshape(ones)
    if value.numel() == 1 and value.ndim <= like.ndim:
        value = value.reshape(ones)
    elif not per_step or tuple(value.shape) != tuple(like.shape):
        allowed = "a scalar" if not per_step else f"a scalar or a tensor of shape {list(like.shape)}"
        raise ValueError(f"{owner}: {name} has shape {list(value.shape)}; expected {allowed}")
    return value.to(dtype=like.dtype, device=like.device)


def _to_time_last_but_one(dim: int, *tensors):
    return [t if t is None or t.ndim == 0 or t.shape[dim] == 1 and t.numel() == 1 else t.movedim(dim, -2) for t in tensors]


def _back(dim: int, t: torch.Tensor) -> torch.Tensor:
    return t.movedim(-2, dim)


def _last_step_cut(done: torch.Tensor) -> torch.Tensor:
    """``done`` with the last step of the batch (time at -2) forced to true.

    Built from ``arange(T) == T - 1``: a ``cat`` of ``T - 1`` and ``1`` steps makes torch.export
    emit an unprovable ``T != 2`` guard.
    """
    T = done.shape[-2]
    last = (torch.arange(T, device=done.device) == T - 1).unsqueeze(-1)
    return done | last


def _scan(x: torch.Tensor, a: torch.Tensor, max_steps: int) -> torch.Tensor:
    return reverse_linear_recurrence(x, a.expand_as(x), time_dim=-2, max_steps=max_steps)


def _as_float(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.dtype)


def _bootstrap(next_state_value: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """``V'`` where the episode goes on, 0 where it terminated: *selected* (``torch.where``), so a
    NaN or inf ``V'`` at a terminated step drops out (multiplying by ``1 - terminated`` would
    keep it: ``0 * NaN = NaN``)."""
    return torch.where(terminated, constant_like(0.0, next_state_value), next_state_value)


# --------------------------------------------------------------------------------------------
# GAE


def generalized_advantage_estimate(
    gamma: float | torch.Tensor,
    lmbda: float | torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    *,
    time_dim: int = -2,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimate (Schulman et al. 2015): ``(advantage, value_target)``.

    ``delta_t = r_t + gamma_t * (1 - terminated_t) * V'_t - V_t`` and
    ``A_t = delta_t + gamma_t * lmbda_t * (1 - done_t) * A_{t+1}``; ``value_target = A + V``.

    Args:
        gamma, lmbda (float or Tensor): discount and GAE lambda: scalars or one per step
            (shape of ``reward``).
        state_value, next_state_value, reward (Tensor): ``[*batch, T, F]``.
        done (bool Tensor): end of trajectory (cuts the recursion).
        terminated (bool Tensor, optional): end of episode (masks the bootstrap); defaults to
            ``done``.

    Keyword Args:
        time_dim (int): the time axis. Defaults to ``-2``.
        max_steps (int): doubling steps kept in a traced graph (horizons up to ``2**max_steps``).

    Examples:
        >>> T = 3
        >>> adv, target = generalized_advantage_estimate(
        ...     0.9, 0.5, torch.zeros(T, 1), torch.ones(T, 1), torch.ones(T, 1),
        ...     torch.zeros(T, 1, dtype=torch.bool))
        >>> adv.squeeze(-1)
        tensor([3.1397, 2.7550, 1.9000])
    """
    owner = "generalized_advantage_estimate"
    if terminated is None:
        terminated = done
    _check_inputs(
        owner,
        {"state_value": state_value, "next_state_value": next_state_value, "reward": reward},
        {"done": done, "terminated": terminated},
    )
    dim = _time_axis(owner, time_dim, reward)
    gamma = _coef(owner, "gamma", gamma, reward)
    lmbda = _coef(owner, "lmbda", lmbda, reward)
    state_value, next_state_value, reward, done, terminated, gamma, lmbda = _to_time_last_but_one(
        dim, state_value, next_state_value, reward, done, terminated, gamma, lmbda
    )
    not_done = _as_float(~done, reward)
    delta = reward + gamma * _bootstrap(next_state_value, terminated) - state_value
    advantage = _scan(delta, gamma * lmbda * not_done, max_steps)
    value_target = advantage + state_value
    return _back(dim, advantage), _back(dim, value_target)


# --------------------------------------------------------------------------------------------
# TD(0)


def td0_return_estimate(
    gamma: float | torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor | None = None,
    *,
    done: torch.Tensor | None = None,
) -> torch.Tensor:
    """One-step return ``r_t + gamma_t * (1 - terminated_t) * V'_t``.

    ``done`` is TorchRL's deprecated alias of ``terminated`` (used only when ``terminated`` is
    not given). Shapes ``[*batch, T, F]`` (any shape: no time recursion).
    """
    owner = "td0_return_estimate"
    if terminated is None:
        terminated = done
    if terminated is None:
        raise TypeError(f"{owner}: missing input 'terminated' (or its deprecated alias 'done')")
    _check_inputs(owner, {"next_state_value": next_state_value, "reward": reward}, {"terminated": terminated})
    gamma = _coef(owner, "gamma", gamma, reward)
    return reward + gamma * _bootstrap(next_state_value, terminated)


def td0_advantage_estimate(
    gamma: float | torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD(0) advantage ``r_t + gamma_t * (1 - terminated_t) * V'_t - V_t`` (``terminated``
    defaults to ``done``)."""
    owner = "td0_advantage_estimate"
    if terminated is None:
        terminated = done
    _check_inputs(
        owner,
        {"state_value": state_value, "next_state_value": next_state_value, "reward": reward},
        {"done": done, "terminated": terminated},
    )
    return td0_return_estimate(gamma, next_state_value, reward, terminated) - state_value


# --------------------------------------------------------------------------------------------
# TD(lambda) and TD(1)


def _td_lambda_return(owner, gamma, lmbda, next_state_value, reward, done, terminated, rolling_gamma, time_dim, max_steps):
    if terminated is None:
        terminated = done
    _check_inputs(
        owner, {"next_state_value": next_state_value, "reward": reward}, {"done": done, "terminated": terminated}
    )
    dim = _time_axis(owner, time_dim, reward)
    gamma_t = _coef(owner, "gamma", gamma, reward)
    lmbda_t = _coef(owner, "lmbda", lmbda, reward)
    if rolling_gamma is None:
        rolling_gamma = True
    if not isinstance(rolling_gamma, bool):
        raise TypeError(f"{owner}: rolling_gamma must be a bool or None, got {rolling_gamma!r}")
    if not rolling_gamma and gamma_t.numel() == 1 and lmbda_t.numel() == 1:
        raise ValueError(
            f"{owner}: rolling_gamma=False is expected only with time-sensitive gamma or lmbda "
            f"(a tensor of shape {list(reward.shape)})"
        )
    next_state_value, reward, done, terminated, gamma_t, lmbda_t = _to_time_last_but_one(
        dim, next_state_value, reward, done, terminated, gamma_t, lmbda_t
    )
    # G_t = r_t + g_t * [(1 - l_t) * nv_t + l_t * (cut_t ? nv_t : G_{t+1})],
    # nv = V' masked by terminated, cut = done or last step of the batch.
    nv = _bootstrap(next_state_value, terminated)
    cut = _as_float(_last_step_cut(done), reward)
    one = constant_like(1.0, reward).reshape((1,) * reward.ndim)
    if rolling_gamma:
        x = reward + gamma_t * nv * (one - lmbda_t + lmbda_t * cut)
        a = gamma_t * lmbda_t * (one - cut)
        return _back(dim, _scan(x, a, max_steps))
    # rolling_gamma=False: G_k uses (gamma_k, lmbda_k) for its whole future. One recursion per
    # start step k, run side by side on a new axis: O(T^2) memory, like TorchRL's O(T^2) loop.
    g = gamma_t.expand_as(reward).transpose(-2, -1).unsqueeze(-1)  # [*b, F, T(k), 1]
    l = lmbda_t.expand_as(reward).transpose(-2, -1).unsqueeze(-1)
    r, v, c = (z.transpose(-2, -1).unsqueeze(-2) for z in (reward, nv, cut))  # [*b, F, 1, T(j)]
    x = r + g * v * (one - l + l * c)
    a = (g * l * (one - c)).expand_as(x)
    y = reverse_linear_recurrence(x, a, time_dim=-1, max_steps=max_steps)  # [*b, F, T(k), T(j)]
    G = torch.diagonal(y, dim1=-2, dim2=-1)  # [*b, F, T]
    return _back(dim, G.transpose(-2, -1))


def td_lambda_return_estimate(
    gamma: float | torch.Tensor,
    lmbda: float | torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    r"""TD(:math:`\lambda`) return.

    ``G_t = r_t + gamma_t * ((1 - lmbda_t) * nv_t + lmbda_t * G'_{t+1})`` with
    ``nv = (1 - terminated) * V'`` and ``G'_{t+1} = nv_t`` where ``done_t`` or at the last step,
    else ``G_{t+1}``.

    ``rolling_gamma`` (default ``True``): with per-step ``gamma``/``lmbda``, ``True`` ties each
    value to its own step (``G_1 = r_1 + g_1 (... r_2 + g_2 (...))``); ``False`` uses the start
    step's ``(gamma_k, lmbda_k)`` for the whole of ``G_k`` (O(T^2) memory); ``False`` with scalar
    ``gamma`` and ``lmbda`` is a ``ValueError`` (TorchRL: ``RuntimeError``).
    """
    return _td_lambda_return(
        "td_lambda_return_estimate", gamma, lmbda, next_state_value, reward, done, terminated, rolling_gamma, time_dim, max_steps
    )


def td_lambda_advantage_estimate(
    gamma: float | torch.Tensor,
    lmbda: float | torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    r"""TD(:math:`\lambda`) advantage: :func:`td_lambda_return_estimate` minus ``state_value``."""
    owner = "td_lambda_advantage_estimate"
    check_tensor(owner, "state_value", state_value, floating=True)
    check_same_shape(owner, {"state_value": state_value, "next_state_value": next_state_value})
    ret = _td_lambda_return(owner, gamma, lmbda, next_state_value, reward, done, terminated, rolling_gamma, time_dim, max_steps)
    return ret - state_value


def td1_return_estimate(
    gamma: float | torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    r"""TD(1) (Monte-Carlo, bootstrapped at truncations and at the end of the batch) return:
    :func:`td_lambda_return_estimate` with ``lmbda = 1``.

    ``rolling_gamma=False`` bootstraps at the last step like ``rolling_gamma=True`` does (TorchRL
    0.14.1's loop starts that case from 0 instead; see ``tests/value``).
    """
    return _td_lambda_return(
        "td1_return_estimate", gamma, 1.0, next_state_value, reward, done, terminated, rolling_gamma, time_dim, max_steps
    )


def td1_advantage_estimate(
    gamma: float | torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    """TD(1) advantage: :func:`td1_return_estimate` minus ``state_value``."""
    owner = "td1_advantage_estimate"
    check_tensor(owner, "state_value", state_value, floating=True)
    check_same_shape(owner, {"state_value": state_value, "next_state_value": next_state_value})
    ret = _td_lambda_return(owner, gamma, 1.0, next_state_value, reward, done, terminated, rolling_gamma, time_dim, max_steps)
    return ret - state_value


# --------------------------------------------------------------------------------------------
# V-trace


def vtrace_advantage_estimate(
    gamma: float | torch.Tensor,
    log_pi: torch.Tensor,
    log_mu: torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rho_thresh: float | torch.Tensor = 1.0,
    c_thresh: float | torch.Tensor = 1.0,
    time_dim: int = -2,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace (Espeholt et al. 2018): ``(advantage, vs)``.

    ``rho = exp(log_pi - log_mu)`` (``log_pi``: the learner/target policy, ``log_mu``: the
    behaviour policy that collected the data); ``delta_t = min(rho, rho_thresh) * (r_t +
    gamma (1 - terminated_t) V'_t - V_t)``; ``vs_t - V_t = delta_t + gamma (1 - done_t)
    min(rho, c_thresh) (vs_{t+1} - V_{t+1})``; ``advantage_t = min(rho, rho_thresh) (r_t + gamma
    (1 - terminated_t) vs'_{t+1} - V_t)`` where ``vs'_{t+1}`` is ``V'_t`` at a done step or the
    last step (never the next trajectory's ``vs``: the fixed TorchRL bug #4209).
    """
    owner = "vtrace_advantage_estimate"
    if terminated is None:
        terminated = done
    _check_inputs(
        owner,
        {"log_pi": log_pi, "log_mu": log_mu, "state_value": state_value, "next_state_value": next_state_value, "reward": reward},
        {"done": done, "terminated": terminated},
    )
    dim = _time_axis(owner, time_dim, reward)
    gamma = _coef(owner, "gamma", gamma, reward)
    rho_thresh = _coef(owner, "rho_thresh", rho_thresh, reward)
    c_thresh = _coef(owner, "c_thresh", c_thresh, reward)
    log_pi, log_mu, state_value, next_state_value, reward, done, terminated, gamma, rho_thresh, c_thresh = (
        _to_time_last_but_one(dim, log_pi, log_mu, state_value, next_state_value, reward, done, terminated, gamma, rho_thresh, c_thresh)
    )
    rho = (log_pi - log_mu).exp()
    rho_bar = torch.minimum(rho, rho_thresh)
    c_bar = torch.minimum(rho, c_thresh)
    deltas = rho_bar * (reward + gamma * _bootstrap(next_state_value, terminated) - state_value)
    vs_minus_v = _scan(deltas, gamma * _as_float(~done, reward) * c_bar, max_steps)
    vs = vs_minus_v + state_value
    # vs_{t+1} inside a trajectory; V'_t at a done step and at the last step of the batch.
    vs_next = torch.nn.functional.pad(vs, (0, 0, 0, 1))[..., 1:, :]  # pad-then-slice exports; last step replaced below
    vs_next = torch.where(_last_step_cut(done), next_state_value, vs_next)
    advantage = rho_bar * (reward + gamma * _bootstrap(vs_next, terminated) - state_value)
    return _back(dim, advantage), _back(dim, vs)


# --------------------------------------------------------------------------------------------
# reward to go


def reward2go(
    reward: torch.Tensor,
    done: torch.Tensor,
    gamma: float | torch.Tensor,
    *,
    time_dim: int = -2,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma (1 - done_t) G_{t+1}`` (no bootstrap).

    Examples:
        >>> reward = torch.ones(6, 1)
        >>> done = torch.tensor([0, 0, 1, 0, 0, 1], dtype=torch.bool).unsqueeze(-1)
        >>> reward2go(reward, done, 0.5).squeeze(-1)
        tensor([1.7500, 1.5000, 1.0000, 1.7500, 1.5000, 1.0000])
    """
    owner = "reward2go"
    _check_inputs(owner, {"reward": reward}, {"done": done})
    squeeze = False
    if reward.ndim == 1 and time_dim in (-1, 0):
        reward, done, time_dim, squeeze = reward.unsqueeze(-1), done.unsqueeze(-1), -2, True
    dim = _time_axis(owner, time_dim, reward)
    gamma = _coef(owner, "gamma", gamma, reward)
    reward, done, gamma = _to_time_last_but_one(dim, reward, done, gamma)
    out = _back(dim, _scan(reward, gamma * _as_float(~done, reward), max_steps))
    return out.squeeze(-1) if squeeze else out
