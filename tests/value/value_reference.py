"""Independent float64 step loops (the tests' reference) and random inputs.

Written from the definitions, one time step at a time, with time at -2; no code shared with
rlexport.value.
"""

from __future__ import annotations

import torch


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
