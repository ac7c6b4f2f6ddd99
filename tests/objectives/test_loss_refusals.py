"""Losses refuse what they cannot compute correctly: one line naming the key, the expected and
the actual shape/dtype, raised before any network runs (an ``InputError``, a ``ValueError``)."""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
from helpers import Nets, make_data, quiet
from rlexport.inputs import InputDtypeError, InputError

quiet()


def _loss_and_data(kind="categorical", name="ClipPPOLoss", ingraph=False, **opts):
    nets = Nets(kind)
    loss = getattr(ro, name)(nets.actor, nets.critic, **opts)
    data = make_data(nets, (5,), with_targets=not ingraph)
    return loss, {k: v for k, v in data.items() if k in loss.accepted_keys and (ingraph or not k.startswith("next_"))}


BAD_INPUTS = [  # (case, kind, in-graph advantage, edit, error, message)
    ("advantage without its feature dim", "categorical", False, lambda d: {"advantage": d["advantage"].squeeze(-1)},
     InputError, r"'advantage' has shape \[5\]; expected \[\*batch, 1\]"),
    ("next_reward without its feature dim", "normal", True, lambda d: {"next_reward": d["next_reward"].squeeze(-1)},
     InputError, r"'next_reward' has shape \[5\]; expected \[\*batch, 1\]"),
    ("float action, discrete actor", "categorical", False, lambda d: {"action": d["action"].float() + 0.7},
     InputDtypeError, r"'action' has dtype torch.float32; a discrete action is an integer tensor"),
    ("integer action, continuous actor", "normal", False, lambda d: {"action": d["action"].long()},
     InputDtypeError, r"'action' has dtype torch.int64; a continuous action is a floating-point tensor"),
    ("observation dtype unlike the network's", "tanh", False, lambda d: {"observation": d["observation"].double()},
     InputDtypeError, r"'observation' has dtype torch.float64 but the network's parameters are torch.float32"),
    ("advantage dtype unlike the network's", "normal", False, lambda d: {"advantage": d["advantage"].double()},
     InputDtypeError, r"'advantage' has dtype torch.float64 but the network's parameters are torch.float32"),
    ("batch of the log-prob differs", "normal", False, lambda d: {"sample_log_prob": d["sample_log_prob"][:4]},
     InputError, r"'sample_log_prob' has shape \[4\] but 'advantage' has shape \[5, 1\]"),
    ("batch of the observation differs", "categorical", False, lambda d: {"observation": d["observation"][:3]},
     InputError, r"'observation' has shape \[3, 4\] but 'advantage' has shape \[5, 1\]"),
    ("batch of the discrete action differs", "categorical", False, lambda d: {"action": d["action"][:, None]},
     InputError, r"'action' has shape \[5, 1\] .* expected 'action' to be \[\*batch\] \(category indices\)"),
    ("next_observation shape differs", "categorical", True, lambda d: {"next_observation": d["next_observation"][:, :3]},
     InputError, r"'next_observation' has shape \[5, 3\] but 'observation' has shape \[5, 4\]"),
    ("time dim of next_done differs", "normal", True, lambda d: {"next_done": d["next_done"][:4]},
     InputError, r"'next_done' has shape \[4, 1\] but 'next_reward' has shape \[5, 1\]"),
    ("empty batch", "categorical", False, lambda d: {k: v[:0] for k, v in d.items()},
     InputError, r"'advantage' has shape \[0, 1\]: an empty batch"),
]


@pytest.mark.parametrize("name", ["A2CLoss", "ClipPPOLoss", "KLPENPPOLoss", "ReinforceLoss"])
@pytest.mark.parametrize("case,kind,ingraph,edit,error,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_by_name(name, case, kind, ingraph, edit, error, message):
    loss, data = _loss_and_data(kind, name, ingraph)
    try:
        bad = edit(data)
    except KeyError as missing:
        pytest.skip(f"{name} does not read {missing}")
    loss(**data)  # the good batch runs
    with pytest.raises(error, match=message):
        loss(**{**data, **bad})


BAD_OPTIONS = [
    ("ClipPPOLoss", dict(clip_epsilon=-0.1), r"clip_epsilon=-0.1 is out of range; expected a finite value in \[0.0, 1.0\)"),
    ("ClipPPOLoss", dict(clip_epsilon=float("nan")), r"clip_epsilon=nan is out of range"),
    ("ClipPPOLoss", dict(clip_epsilon=1.5), r"clip_epsilon=1.5 is out of range"),
    ("ClipPPOLoss", dict(clip_value=-0.2), r"clip_value=-0.2 is out of range; expected a finite value in \[0.0, inf\)"),
    ("A2CLoss", dict(clip_value=float("inf")), r"clip_value=inf is out of range"),
    ("KLPENPPOLoss", dict(dtarg=0.0), r"dtarg=0.0 is out of range; expected a finite value in \(0.0, inf\)"),
    ("KLPENPPOLoss", dict(dtarg=-1.0), r"dtarg=-1.0 is out of range"),
    ("KLPENPPOLoss", dict(beta=-1.0), r"beta=-1.0 is out of range"),
    ("KLPENPPOLoss", dict(decrement=0.0), r"decrement=0.0 is out of range"),
    ("A2CLoss", dict(entropy_coeff=float("nan")), r"entropy_coeff=nan is out of range"),
    ("PPOLoss", dict(critic_coeff=float("inf")), r"critic_coeff=inf is out of range"),
    ("PPOLoss", dict(samples_mc_entropy=0), r"samples_mc_entropy=0 is out of range; expected an int >= 1"),
    ("KLPENPPOLoss", dict(samples_mc_kl=0), r"samples_mc_kl=0 is out of range"),
]


@pytest.mark.parametrize("name,opts,message", BAD_OPTIONS, ids=[f"{c[0]}-{next(iter(c[1]))}={next(iter(c[1].values()))}" for c in BAD_OPTIONS])
def test_bad_option_is_refused_at_construction(name, opts, message):
    nets = Nets("normal")
    with pytest.raises(InputError, match=message):
        getattr(ro, name)(nets.actor, nets.critic, **opts)


@pytest.mark.parametrize("hp,message", [
    (dict(gamma=1.5), r"GAE: gamma=1.5 is out of range; expected a finite value in \[0.0, 1.0\]"),
    (dict(lmbda=-0.1), r"GAE: lmbda=-0.1 is out of range"),
    (dict(gamma=float("nan")), r"GAE: gamma=nan is out of range"),
])
def test_make_value_estimator_refuses_bad_coefficients(hp, message):
    nets = Nets("normal")
    with pytest.raises(InputError, match=message):
        ro.ClipPPOLoss(nets.actor, nets.critic).make_value_estimator(**hp)
