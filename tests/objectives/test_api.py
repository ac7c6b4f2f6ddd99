"""Constructor options, keys, out_keys, the TensorDict adapter and input errors."""

from __future__ import annotations


import pytest
import torch

import rlexport.objectives as ro
from helpers import Nets, make_data, quiet, to_td

quiet()

ALL = ("A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "ReinforceLoss")


@pytest.fixture(scope="module")
def nets():
    return Nets("normal")


@pytest.fixture(scope="module")
def data(nets):
    return make_data(nets, (6,))


def kw(loss, data, drop=()):
    return {k: v for k, v in data.items() if k in loss.accepted_keys and k not in drop}


# ------------------------------------------------------------------------------- out_keys
OUT_KEY_CONFIGS = [
    ("A2CLoss", {}),
    ("A2CLoss", {"entropy_bonus": False, "clip_value": 0.2}),
    ("A2CLoss", {"critic_coeff": None}),
    ("PPOLoss", {}),
    ("PPOLoss", {"entropy_bonus": False, "clip_value": 0.2}),
    ("ClipPPOLoss", {}),
    ("ClipPPOLoss", {"clip_value": True}),
    ("KLPENPPOLoss", {}),
    ("KLPENPPOLoss", {"clip_value": 0.3, "entropy_bonus": False}),
    ("ReinforceLoss", {}),
]


@pytest.mark.parametrize("name,opts", OUT_KEY_CONFIGS)
def test_out_keys_follow_torchrl(nets, name, opts):
    """``out_keys`` is TorchRL's ``out_keys`` (the order of its keyword call's tuple); KLPEN
    appends ``beta_next`` (the pure β update)."""
    import torchrl.objectives as tro

    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, name)(tl_actor, tl_critic, **opts)
    ours = getattr(ro, name)(nets.actor, nets.critic, **opts)
    expected = list(tl.out_keys) + (["beta_next"] if name == "KLPENPPOLoss" else [])
    assert ours.out_keys == expected


def test_out_keys_without_critic(nets, data):
    """TorchRL lists ``loss_critic`` even without a critic (and then fails to return it); here
    the output is absent."""
    loss = ro.PPOLoss(nets.actor, None)
    assert loss.out_keys == ["loss_objective", "entropy", "loss_entropy"]
    out = loss(**kw(loss, data))
    assert len(out) == 3
    with pytest.raises(TypeError, match="'advantage'"):
        loss(**kw(loss, data, drop=("advantage",)))
    zero = ro.ClipPPOLoss(nets.actor, nets.critic, critic_coeff=0.0)
    assert "loss_critic" not in zero.out_keys


def test_select_out_keys(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    assert loss.select_out_keys("kl_approx", "loss_objective", "explained_variance") is loss
    out = loss(**kw(loss, data))
    assert len(out) == 3 and out[0].shape == () and out[2].shape == (1,)
    full = loss.reset_out_keys().compute_all(**kw(loss, data))
    torch.testing.assert_close(out[1], full["loss_objective"])
    with pytest.raises(ValueError, match="available outputs"):
        loss.select_out_keys("nope")


def test_available_out_keys_are_torchrl_tensordict_keys(nets, data):
    import torchrl.objectives as tro

    for name in ("PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "A2CLoss"):
        tl_actor, tl_critic = nets.torchrl()
        tl = getattr(tro, name)(tl_actor, tl_critic, clip_value=0.2)
        tl.set_keys(sample_log_prob="sample_log_prob")
        ours = getattr(ro, name)(nets.actor, nets.critic, clip_value=0.2)
        td_keys = list(tl(to_td(data, (6,))).keys())
        assert [k for k in ours.available_out_keys if k != "beta_next"] == td_keys


# ------------------------------------------------------------------------------- TensorDict
@pytest.mark.parametrize("name", ALL)
def test_tensordict_adapter_matches_torchrl(nets, data, name):
    import torchrl.objectives as tro

    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, name)(tl_actor, tl_critic)
    if hasattr(tl.tensor_keys, "sample_log_prob"):
        tl.set_keys(sample_log_prob="sample_log_prob")
    ours = getattr(ro, name)(nets.actor, nets.critic)
    td = to_td(data, (6,))
    theirs = tl(td.clone())
    mine = ours(td.clone())  # a TensorDict positionally: rlexport.tensordict.call_loss
    assert list(mine.keys()) == list(theirs.keys())
    for k in theirs.keys():
        torch.testing.assert_close(mine[k], theirs[k], msg=k)
    if name == "KLPENPPOLoss":
        assert float(ours.beta) == pytest.approx(float(tl.beta))


def test_keyword_and_tensordict_calls_agree(nets, data):
    from rlexport.tensordict import call_loss, to_kwargs

    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    td = to_td(data, (6,))
    flat = to_kwargs(td)
    assert "next_reward" in flat and torch.equal(flat["next_reward"], data["next_reward"])
    out_td = call_loss(loss, td)
    out = loss(**kw(loss, data))
    for k, v in zip(loss.out_keys, out):
        torch.testing.assert_close(out_td[k], v)


# ------------------------------------------------------------------------------- options
def test_constructor_aliases_and_defaults(nets):
    a = ro.PPOLoss(nets.actor, nets.critic, entropy_coef=0.02, critic_coef=0.5)
    b = ro.PPOLoss(actor=nets.actor, critic=nets.critic, entropy_coeff=0.02, critic_coeff=0.5)
    assert (a.entropy_coeff, a.critic_coeff) == (b.entropy_coeff, b.critic_coeff) == (0.02, 0.5)
    d = ro.ClipPPOLoss(nets.actor, nets.critic)
    assert (d.entropy_coeff, d.critic_coeff, d.clip_epsilon, d.loss_critic_type, d.reduction) == (
        0.01, 1.0, 0.2, "smooth_l1", "mean")
    assert ro.A2CLoss(nets.actor, nets.critic, entropy_coeff=0.0).entropy_bonus is False
    with pytest.raises(TypeError, match="not both"):
        ro.PPOLoss(nets.actor, nets.critic, entropy_coef=0.1, entropy_coeff=0.1)


def test_gamma_in_constructor_raises_like_torchrl(nets):
    from torchrl.objectives.utils import _GAMMA_LMBDA_DEPREC_ERROR

    for name in ALL[:4]:
        with pytest.raises(TypeError) as err:
            getattr(ro, name)(nets.actor, nets.critic, gamma=0.9)
        assert str(err.value) == _GAMMA_LMBDA_DEPREC_ERROR


@pytest.mark.parametrize(
    "name,opts,match",
    [
        ("PPOLoss", {"loss_critic_type": "huber"}, r"loss_critic_type='huber'.*\['l1', 'l2', 'smooth_l1'\]"),
        ("A2CLoss", {"reduction": "max"}, r"reduction='max'.*\['none', 'mean', 'sum'\]"),
        ("KLPENPPOLoss", {"increment": 0.5}, "increment"),
        ("KLPENPPOLoss", {"decrement": 1.5}, "decrement"),
        ("ClipPPOLoss", {"clip_epsilon": (0.1, 0.2), "clip_value": True}, "asymmetric"),
        ("ReinforceLoss", {"clip_value": 1}, "clip_value"),
    ],
)
def test_bad_options_fail_at_construction(nets, name, opts, match):
    with pytest.raises(ValueError, match=match):
        getattr(ro, name)(nets.actor, nets.critic, **opts)


def test_unknown_option_refused(nets):
    with pytest.raises(TypeError, match="'clip_epsilonn'"):
        ro.ClipPPOLoss(nets.actor, nets.critic, clip_epsilonn=0.1)
    with pytest.raises(TypeError, match="actor_network or critic_network"):
        ro.A2CLoss(nets.actor)


def test_set_keys(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    assert "sample_log_prob" in loss.accepted_keys
    loss.set_keys(sample_log_prob="action_log_prob", advantage=("adv", "gae"))
    assert "action_log_prob" in loss.accepted_keys and "adv_gae" in loss.accepted_keys
    inputs = kw(ro.ClipPPOLoss(nets.actor, nets.critic), data)
    inputs["action_log_prob"] = inputs.pop("sample_log_prob")
    inputs["adv_gae"] = inputs.pop("advantage")
    ref = ro.ClipPPOLoss(nets.actor, nets.critic)(**kw(ro.ClipPPOLoss(nets.actor, nets.critic), data))
    for a, b in zip(loss(**inputs), ref):
        torch.testing.assert_close(a, b)
    loss.set_keys(sample_log_prob=None)
    assert "sample_log_prob" in loss.accepted_keys
    with pytest.raises(ValueError, match="accepted keys"):
        loss.set_keys(log_prob="x")


def test_hyper_parameters_as_inputs(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.1)
    base = kw(loss, data)
    ref = ro.ClipPPOLoss(nets.actor, nets.critic, clip_value=0.3, clip_epsilon=0.1, entropy_coeff=0.05, critic_coeff=0.5)
    got = loss(**base, clip_value=torch.tensor(0.3), clip_epsilon=torch.tensor(0.1),
               entropy_coeff=torch.tensor(0.05), critic_coeff=torch.tensor(0.5))
    for a, b in zip(got, ref(**base)):
        torch.testing.assert_close(a, b)


def test_make_value_estimator_validation(nets):
    loss = ro.A2CLoss(nets.actor, nets.critic)
    with pytest.raises(ValueError, match="value_type"):
        loss.make_value_estimator("montecarlo")


# ------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("name", ALL)
def test_missing_input_named(nets, data, name):
    loss = getattr(ro, name)(nets.actor, nets.critic)
    with pytest.raises(TypeError, match=r"missing input 'action'.*expected keywords"):
        loss(**kw(loss, data, drop=("action",)))


def test_missing_in_graph_inputs_named(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    with pytest.raises(TypeError, match="missing input 'next_reward'"):
        loss(**kw(loss, data, drop=("advantage", "next_reward")))


def test_unknown_input_refused(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    with pytest.raises(TypeError, match=r"unknown input 'obsrvation'"):
        loss(**kw(loss, data), obsrvation=data["observation"])
    with pytest.raises(TypeError, match="keyword tensors only"):
        loss(data["observation"])


@pytest.mark.parametrize("name", ["A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss"])
def test_action_requiring_grad_raises(nets, data, name):
    loss = getattr(ro, name)(nets.actor, nets.critic)
    inputs = kw(loss, data)
    inputs["action"] = inputs["action"].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="'action' requires grad"):
        loss(**inputs)


def test_log_prob_requiring_grad_raises(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    inputs = kw(loss, data)
    inputs["sample_log_prob"] = inputs["sample_log_prob"].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="'sample_log_prob' requires grad"):
        loss(**inputs)


@pytest.mark.parametrize(
    "key,shape,match",
    [
        ("advantage", (6,), r"'advantage' has shape \[6\]; expected \[\*batch, 1\]"),
        ("sample_log_prob", (6, 1), r"'sample_log_prob' has shape \[6, 1\] but 'advantage' has shape \[6, 1\]; expected 'sample_log_prob' to be \[\*batch\]"),
        ("value_target", (6, 2), r"'value_target' has shape \[6, 2\]; expected \[\*batch, 1\]"),
        ("value_target", (5, 1), r"'value_target' has shape \[5, 1\] but 'advantage' has shape \[6, 1\]"),
    ],
)
def test_shape_mismatch_names_both_shapes(nets, data, key, shape, match):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    inputs = kw(loss, data)
    inputs[key] = torch.zeros(shape)
    with pytest.raises(ValueError, match=match):
        loss(**inputs)


def test_in_graph_signal_checks(nets, data):
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    inputs = kw(loss, data, drop=("advantage", "value_target", "state_value"))
    bad = dict(inputs, next_done=inputs["next_done"].float())
    with pytest.raises(TypeError, match="'next_done' must be a bool tensor"):
        loss(**bad)
    bad = dict(inputs, next_reward=inputs["next_reward"][:4])
    with pytest.raises(ValueError, match=r"shape \[4, 1\]"):
        loss(**bad)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        loss(**dict(inputs, next_reward=[1.0] * 6))


def test_a2c_normalize_advantage_extension(nets, data):
    """rlexport extension: A2C standardises the advantage like PPO when asked."""
    from rlexport.objectives import standardize

    loss = ro.A2CLoss(nets.actor, nets.critic, normalize_advantage=True)
    plain = ro.A2CLoss(nets.actor, nets.critic)
    inputs = kw(loss, data)
    ref = plain(**dict(inputs, advantage=standardize(inputs["advantage"])))
    for a, b in zip(loss(**inputs), ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss_function", ["l1", "l2", "smooth_l1"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_distance_loss_is_torch_functional(dtype, loss_function, reduction):
    """distance_loss is torch.nn.functional's loss: the same values and gradients bit for bit."""
    import torch.nn.functional as F

    from rlexport.objectives.utils import distance_loss

    g = torch.Generator().manual_seed(0)
    target = 2 * torch.randn(33, 1, generator=g, dtype=dtype)
    reference = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}[loss_function]
    value = torch.randn(33, 1, generator=g, dtype=dtype, requires_grad=True)
    got = distance_loss(target, value, loss_function, reduction=reduction)
    want = reference(target, value, reduction=reduction)
    assert torch.equal(got, want)
    (got_grad,) = torch.autograd.grad(got.sum(), value)
    (want_grad,) = torch.autograd.grad(want.sum(), value)
    assert torch.equal(got_grad, want_grad)
    with pytest.raises(ValueError, match=r"shapes \[33, 1\] and \[33\]"):
        distance_loss(target, value.squeeze(-1), loss_function)


@pytest.mark.parametrize("name", ALL)
def test_in_keys_are_unique_and_suffice(nets, data, name):
    """``in_keys`` names each input once (actor and critic both read ``observation``), KL-PPO's
    lists ``beta`` (an input of forward), and forward runs on exactly those keys."""
    loss = getattr(ro, name)(nets.actor, nets.critic)
    keys = loss.in_keys
    assert len(keys) == len(set(keys)), keys
    assert ("beta" in keys) == (name == "KLPENPPOLoss")
    given = {k: v for k, v in data.items() if k in keys}
    if name == "KLPENPPOLoss":
        given["beta"] = torch.tensor(0.7)
        ref = ro.KLPENPPOLoss(nets.actor, nets.critic, beta=0.7)
        for a, b in zip(loss(**given), ref(**{k: v for k, v in given.items() if k != "beta"})):
            torch.testing.assert_close(a, b)
    assert set(given) == set(keys), set(keys) - set(given)
    loss(**given)
