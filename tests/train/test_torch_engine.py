"""The torch engine's per-step calls: ``act`` (``Sampler.act`` under inference mode) draws what
``Sampler.forward`` (the exported act graph's module) draws, scored as ``torch.distributions``
scores it; ``update`` is one step of a plain ``torch.optim.Adam`` + ``clip_grad_norm_`` loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import distributions as D
from torch import nn

from rlexport.inputs import InputError
from rlexport.train import make_config
from rlexport.train.agent import layer_forwards
from rlexport.train.engines import loss_total
from rlexport.train.loop import Trainer

KINDS = {
    "categorical": ("CartPole-v1", {}),
    "normal": ("Pendulum-v1", {}),
    "tanh_normal": ("Pendulum-v1", {"box_distribution": "tanh_normal", "ent_coef": 0.0}),
    "composite": ("rlexport/MultiHeadCartPole-v0", {}),
}


def _trainer(tmp_path, kind: str) -> Trainer:
    env_id, over = KINDS[kind]
    cfg = make_config("ppo", env_id, engine="torch", seed=5, total_steps=1024, out=str(tmp_path / "run"),
                      export_artifacts=False, **over)
    return Trainer(cfg, tmp_path / "run")


@pytest.mark.parametrize("kind", list(KINDS))
def test_act_draws_what_the_sampler_module_draws(tmp_path, kind):
    tr = _trainer(tmp_path, kind)
    eng, rng = tr.engine, np.random.default_rng(0)
    obs = (3 * rng.standard_normal((tr.cfg.num_envs, tr.spec.obs_dim))).astype(np.float32)
    noise = tr.spec.draw_noise(rng, tr.cfg.num_envs)
    action, log_prob = eng.act(obs, noise)
    with torch.no_grad():
        ref_action, ref_log_prob = eng.sampler(torch.from_numpy(obs), torch.from_numpy(noise))
    assert np.array_equal(action, ref_action.numpy()) and np.array_equal(log_prob, ref_log_prob.numpy())
    assert log_prob.shape == (tr.cfg.num_envs,)
    with torch.no_grad():
        params = eng.actor.dist_params(observation=torch.from_numpy(obs))
    if kind == "categorical":
        ref = D.Categorical(logits=params["logits"]).log_prob(torch.from_numpy(action))
    elif kind == "normal":
        ref = D.Normal(params["loc"], params["scale"]).log_prob(torch.from_numpy(action)).sum(-1)
    else:
        return  # TanhNormal and composite heads: scored against TorchRL in tests/modules
    torch.testing.assert_close(torch.from_numpy(log_prob), ref)


@pytest.mark.parametrize("kind", ["categorical", "normal"])
def test_update_is_a_torch_optim_adam_step(tmp_path, kind):
    tr = _trainer(tmp_path, kind)
    eng = tr.engine
    ex = tr._example_minibatch()
    mb = {k: ex[k] for k in eng.input_names}
    ref_loss = copy.deepcopy(eng.loss)
    ref_params = [p for p in ref_loss.parameters() if p.requires_grad]
    assert len(ref_params) == len(eng.params)
    opt = torch.optim.Adam(ref_params, lr=1e-3, eps=tr.cfg.adam_eps, foreach=False)
    for step, lr in enumerate((1e-3, 5e-4, 2e-4)):
        got = eng.update(mb, lr)
        for g in opt.param_groups:
            g["lr"] = lr
        outs = ref_loss(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mb.items()})
        outs = outs if isinstance(outs, tuple) else (outs,)
        total = loss_total(eng.out_keys, outs)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, tr.cfg.max_grad_norm, foreach=False)
        opt.step()
        expected = {k: float(o.detach().mean()) for k, o in zip(eng.out_keys, outs)}
        expected["loss"] = float(total.detach())
        assert got.keys() == expected.keys() and all(isinstance(v, float) for v in got.values())
        np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-5, atol=1e-6,
                                   err_msg=f"step {step}")
        for (name, p), q in zip(eng.params.items(), ref_params):
            torch.testing.assert_close(p.detach(), q.detach(), msg=f"step {step}: parameter {name}")
    assert float(eng.state()["adam.step"]) == 3.0


def test_layer_forwards_opens_plain_sequentials_and_keeps_hooked_modules_whole():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 2), nn.ReLU()))
    x = torch.randn(4, 3)
    forwards = layer_forwards(net)
    assert len(forwards) == 4
    out = x
    for f in forwards:
        out = f(out)
    assert torch.equal(out, net(x))
    net[2][0].register_forward_hook(lambda m, i, o: o * 2)  # a hook anywhere: the module is called whole
    assert layer_forwards(net) == [net]


def test_update_checks_the_layout_again_when_the_minibatch_shape_changes(tmp_path):
    tr = _trainer(tmp_path, "categorical")
    eng = tr.engine
    ex = tr._example_minibatch()
    mb = {k: ex[k] for k in eng.input_names}
    eng.update(mb, 1e-3)
    eng.update(mb, 1e-3)  # same signature: the already checked path
    bad = dict(mb, advantage=np.asarray(mb["advantage"]).reshape(-1))  # [B] instead of [B, 1]
    with pytest.raises(InputError, match="advantage"):
        eng.update(bad, 1e-3)
