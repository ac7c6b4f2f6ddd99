"""TorchRL 0.14.1's estimator options (issue 14): ``MultiAgentGAE``/``MAGAE``, ``shifted``,
``skip_existing``, ``device``, TensorDict calls ``est(td)``; each against TorchRL's module."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.objectives import value as tv

import helpers as ref
from helpers import StandInValue, assert_close, check
from rlexport.value import GAE, MultiAgentGAE, TD0Estimator, TDLambdaEstimator, ValueEstimators, VTrace

LOOSE = "torchrl-float32-constants"


def _signals(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(*shape, 1, generator=gen, dtype=torch.float64)
    done, term = ref.flags((*shape, 1), "random", gen)
    return r, done, term


@pytest.mark.parametrize("average_gae", [False, True])
@pytest.mark.parametrize("team_shared", [True, False])
def test_multi_agent_gae_matches_torchrl(average_gae, team_shared):
    """Per-agent values ``[B, T, A, 1]``; team-shared ``[B, T, 1]`` or per-agent signals; values
    and the gradient with respect to the values (``differentiable=True``)."""
    B, T, A = 2, 6, 3
    r, done, term = _signals((B, T) if team_shared else (B, T, A), seed=1)
    gen = torch.Generator().manual_seed(2)
    v, nv = (torch.randn(B, T, A, 1, generator=gen, dtype=torch.float64) for _ in range(2))
    gamma, lmbda = ref.EXACT_GAE["gamma"], ref.EXACT_GAE["lmbda"]
    ours = MultiAgentGAE(gamma=gamma, lmbda=lmbda, average_gae=average_gae, differentiable=True,
                         time_dim=None if team_shared else -3)
    theirs = tv.MultiAgentGAE(gamma=gamma, lmbda=lmbda, average_gae=average_gae, differentiable=True, value_network=None)

    def torchrl(next_reward, next_done, next_terminated, state_value, next_state_value):
        td = TensorDict({"state_value": state_value, "next": {"state_value": next_state_value, "reward": next_reward,
                         "done": next_done, "terminated": next_terminated}}, [B, T])
        td = theirs(td)
        return td["advantage"], td["value_target"]

    inputs = dict(next_reward=r, next_done=done, next_terminated=term, state_value=v, next_state_value=nv)
    check(ours, torchrl, inputs, grad_wrt=("state_value",))


def test_make_value_estimator_magae_and_torchrl_enum_members():
    """``make_value_estimator(ValueEstimators.MAGAE)`` and TorchRL's own enum members: the same
    losses as TorchRL's (values and gradients), without importing TorchRL in rlexport."""
    import torchrl.objectives as tro
    from torchrl.objectives.utils import ValueEstimators as TorchRLValueEstimators

    import rlexport.objectives as ro

    nets = ref.Nets("normal", torch.float64)
    shape = (3, 5)
    data = ref.make_data(nets, shape, seed=4, with_targets=False)
    for ours_member, torchrl_member in ((ValueEstimators.MAGAE, TorchRLValueEstimators.MAGAE),
                                        (TorchRLValueEstimators.TDLambda, TorchRLValueEstimators.TDLambda)):
        tl_actor, tl_critic = nets.torchrl()
        tl = tro.ClipPPOLoss(tl_actor, tl_critic).double()
        tl.set_keys(sample_log_prob="sample_log_prob")
        ours = ro.ClipPPOLoss(nets.actor, nets.critic)
        ref.exact_torchrl_buffers(tl, entropy_coeff=ours.entropy_coeff, critic_coeff=ours.critic_coeff,
                                  clip_epsilon=float(ours.clip_epsilon))
        tl.make_value_estimator(torchrl_member, **ref.EXACT_GAE)
        ours.make_value_estimator(ours_member, **ref.EXACT_GAE)
        assert ours.value_type.name == torchrl_member.name
        td = ref.to_td(data, shape)
        td.names = [None, "time"]
        theirs = tl(td)
        mine = ours.compute_all(**{k: v for k, v in data.items() if k in ours.accepted_keys})
        ref.compare(mine, theirs, nets.params(), torch.float64)


def _td(kw, B, T, **extra):
    return TensorDict(
        {"observation": kw["observation"], **extra,
         "next": {"observation": kw["next_observation"], "reward": kw["next_reward"],
                  "done": kw["next_done"], "terminated": kw["next_terminated"]}},
        batch_size=[B, T],
    )


def _batch(B=3, T=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r, done, term = _signals((B, T), seed)
    o, no = (torch.randn(B, T, 4, generator=gen) for _ in range(2))
    return dict(observation=o, next_observation=no, next_reward=r.float(), next_done=done, next_terminated=term)


@pytest.mark.parametrize("skip_existing", [None, False, True])
@pytest.mark.parametrize("name", ["GAE", "TD0Estimator", "TDLambdaEstimator"])
def test_tensordict_call_and_skip_existing_match_torchrl(name, skip_existing):
    """``est(td)`` writes ``advantage``/``value_target`` (and the values) into ``td`` and returns
    it; a stale ``state_value`` in ``td`` is recomputed unless ``skip_existing=True``."""
    lin = nn.Linear(4, 1)
    opts = {"gamma": 0.9, **({"lmbda": 0.8} if name != "TD0Estimator" else {}), "skip_existing": skip_existing}
    ours = {"GAE": GAE, "TD0Estimator": TD0Estimator, "TDLambdaEstimator": TDLambdaEstimator}[name](
        value_network=StandInValue(lin), **opts)
    theirs = getattr(tv, name)(value_network=TensorDictModule(lin, ["observation"], ["state_value"]), **opts)
    kw = _batch(seed=3)
    stale = torch.full((3, 7, 1), 5.0)
    td_ours = _td(kw, 3, 7, state_value=stale)
    td_ours["next", "state_value"] = stale.clone()
    td_theirs = td_ours.clone()
    assert ours(td_ours) is td_ours
    theirs(td_theirs)
    assert set(td_ours.keys(True, True)) == set(td_theirs.keys(True, True))
    for key in ("advantage", "value_target", "state_value", ("next", "state_value")):
        assert_close(td_ours[key], td_theirs[key], LOOSE, str(key))
    uses_stale = bool(torch.equal(td_ours["state_value"], stale))
    assert uses_stale == bool(skip_existing)
    # the keyword call: given values only with skip_existing=True
    if skip_existing:
        adv, _ = ours(**kw, state_value=stale, next_state_value=stale)
        assert_close(adv, td_theirs["advantage"], LOOSE)
    else:
        with pytest.raises(TypeError, match="unknown input 'state_value'"):
            ours(**kw, state_value=stale)


def test_tensordict_call_without_value_network_and_with_keys():
    kw = _batch(seed=5)
    gen = torch.Generator().manual_seed(0)
    v, nv = (torch.randn(3, 7, 1, generator=gen) for _ in range(2))
    ours, theirs = GAE(gamma=0.9, lmbda=0.7), tv.GAE(gamma=0.9, lmbda=0.7, value_network=None)
    for est in (ours, theirs):
        est.set_keys(advantage=("agents", "adv"), value_target="vt")
    tds = []
    for est in (ours, theirs):
        td = TensorDict({"state_value": v, "next": {"state_value": nv, "reward": kw["next_reward"],
                         "done": kw["next_done"], "terminated": kw["next_terminated"]}}, [3, 7])
        tds.append(est(td))
    assert set(tds[0].keys(True, True)) == set(tds[1].keys(True, True))
    for key in (("agents", "adv"), "vt"):
        assert_close(tds[0][key], tds[1][key], LOOSE, str(key))


@pytest.mark.parametrize("budget", [1, 2])
@pytest.mark.parametrize("name", ["GAE", "TD0Estimator", "TD1Estimator", "TDLambdaEstimator"])
def test_shifted_true_matches_torchrl(name, budget):
    """``shifted=True``: one value-network call over ``T + shifted_budget`` slots, truncated
    steps' next inputs inserted, displaced steps masked (``shifted_valid``), as TorchRL 0.14.1;
    the gradient reaches the inputs as TorchRL's (``differentiable=True``)."""
    import rlexport.value as rv

    lin = nn.Linear(4, 1).double()
    opts = {"gamma": 0.9921875, **({"lmbda": 0.9375} if name in ("GAE", "TDLambdaEstimator") else {}),
            "shifted": True, "shifted_budget": budget, "differentiable": True}
    ours = getattr(rv, name)(value_network=StandInValue(lin), **opts)
    theirs = getattr(tv, name)(value_network=TensorDictModule(lin, ["observation"], ["state_value"]), **opts)
    B, T = 3, 7
    kw = {k: (v.double() if v.is_floating_point() else v) for k, v in _batch(B, T, seed=2).items()}
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 1] = done[0, 4] = done[1, 3] = done[2, 6] = True  # truncations (and one at the last step)
    term = torch.zeros_like(done)
    term[1, 3] = True  # a termination
    kw.update(next_done=done, next_terminated=term)

    def torchrl(**kw):
        td = _td(kw, B, T)
        td.names = [None, "time"]
        td = theirs(td)
        return td["advantage"], td["value_target"]

    check(ours, torchrl, kw, kind=torch.float64, grad_wrt=("observation", "next_observation"))
    td_ours, td_theirs = _td(kw, B, T), _td(kw, B, T)
    td_theirs.names = [None, "time"]
    ours(td_ours), theirs(td_theirs)
    assert set(td_ours.keys(True, True)) == set(td_theirs.keys(True, True))
    assert torch.equal(td_ours["shifted_valid"], td_theirs["shifted_valid"])
    assert not td_ours["shifted_valid"].all()  # some steps were displaced
    for key in ("state_value", ("next", "state_value")):
        assert_close(td_ours[key], td_theirs[key], torch.float64, str(key))


def test_shifted_true_exports_with_dynamic_time():
    from torch.export import Dim

    est = GAE(gamma=0.9, lmbda=0.8, value_network=StandInValue(nn.Linear(4, 1)), shifted=True, max_steps=5)
    example = _batch(3, 8, seed=1)
    shapes = {k: {0: Dim("batch", min=1, max=64), 1: Dim("time", min=2, max=32)} for k in example}
    program = torch.export.export(est, (), kwargs=example, dynamic_shapes=shapes)
    for b, t in ((1, 5), (4, 19)):
        other = _batch(b, t, seed=b + t)
        for g, e in zip(program.module()(**other), est(**other)):
            torch.testing.assert_close(g, e)


def test_shifted_and_device_options():
    kw = _batch(seed=6)
    net = StandInValue(nn.Linear(4, 1))
    base = GAE(gamma=0.9, lmbda=0.8, value_network=net)
    assert GAE(gamma=0.9, lmbda=0.8, value_network=net).shifted is False
    for a, b in zip(GAE(gamma=0.9, lmbda=0.8, value_network=net, shifted=False)(**kw), base(**kw)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="shifted must be a boolean"):
        GAE(gamma=0.9, lmbda=0.8, shifted="yes")
    with pytest.raises(ValueError, match="skip_existing must be None or a boolean"):
        GAE(gamma=0.9, lmbda=0.8, skip_existing=1)
    # device=: tensor coefficients are buffers on that device (TorchRL); floats stay exact floats
    est = TDLambdaEstimator(gamma=torch.tensor(0.9), lmbda=0.8, device="meta")
    assert est.gamma.device.type == "meta" and est.lmbda == 0.8
    assert VTrace(gamma=0.9, device=torch.device("cpu")).gamma == 0.9
