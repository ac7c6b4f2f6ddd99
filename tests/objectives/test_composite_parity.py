"""Composite (multi-head) actions in every loss, against TorchRL 0.14.1 with a
``CompositeDistribution`` actor over the same weights: every output TorchRL writes (per-head
``composite_entropy`` entries flattened) and the gradient of every ``loss_*`` output with
respect to every parameter, in TorchRL's non-aggregated (per-head log-probs) and aggregated
(``sample_log_prob``) modes, with scalar and per-head ``entropy_coeff``.

TorchRL samples the Monte-Carlo entropy of the TanhNormal head right after
``torch.manual_seed(11)``; rlexport gets the same draws as ``entropy_noise_throttle``.
TorchRL 0.14.1's A2C cannot take the entropy of a composite with a Categorical head (it calls
``rsample`` on the whole composite): A2C's entropy is checked against TorchRL's PPO instead.
TorchRL's KLPEN estimates a composite KL by Monte Carlo (a torch-RNG categorical draw):
rlexport sums each head's closed-form KL; checked against ``torch.distributions.kl``.
"""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
from helpers import ACT, EXACT_GAE, HEADS, CompositeNets, assert_close, compare, composite_td, exact_torchrl_buffers, make_composite_data, quiet

quiet()

COEFFS = {"move": 0.02, "steer": 0.05, "throttle": 0.1}


def _run(loss_name, opts, dtype=torch.float32, shape=(6,), aggregated=False, ingraph=False, samples=1):
    import torchrl.objectives as tro

    nets = CompositeNets(dtype)
    tl_actor, tl_critic = nets.torchrl()
    tl_opts = dict(opts)
    if isinstance(opts.get("entropy_coeff"), dict):  # TorchRL keys the mapping by its entropy leaves
        tl_opts["entropy_coeff"] = {("action", f"{h}_entropy"): c for h, c in opts["entropy_coeff"].items()}
    tl = getattr(tro, loss_name)(tl_actor, tl_critic, **tl_opts)
    ours = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    if loss_name not in ("A2CLoss", "ReinforceLoss"):
        tl.set_keys(sample_log_prob="sample_log_prob" if aggregated else [("action", f"{h}_log_prob") for h in HEADS])
        tl.set_keys(action=[("action", h) for h in HEADS])
    else:
        tl.set_keys(action="action")  # A2C / Reinforce select the composite action by its root
    if dtype is torch.float64:
        tl.double()
        exact_torchrl_buffers(tl, entropy_coeff=ours.__dict__.get("entropy_coeff"),
                              critic_coeff=getattr(ours, "critic_coeff", None), beta=opts.get("beta"),
                              clip_epsilon=getattr(ours, "clip_epsilon", None), clip_value=ours.clip_value)
    if ingraph and dtype is torch.float64:
        from torchrl.objectives import ValueEstimators as TV

        tl.make_value_estimator(TV.GAE, **EXACT_GAE)
        ours.make_value_estimator("GAE", **EXACT_GAE)
    data = make_composite_data(nets, shape, with_targets=not ingraph)
    td = composite_td(nets, data, shape, aggregated=aggregated)
    torch.manual_seed(11)
    data["entropy_noise_throttle"] = torch.randn(samples, *shape, ACT, dtype=dtype)
    drop = set(f"action_{h}_log_prob" for h in HEADS) if aggregated else {"sample_log_prob"}
    kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys and k not in drop}
    torch.manual_seed(11)
    theirs = tl(td).flatten_keys("_")
    return ours.compute_all(**kwargs), theirs, nets, ours, kwargs


CASES = {
    # name: (loss, options, dtype, batch, aggregated, in-graph GAE)
    "ppo": ("PPOLoss", {}, torch.float32, (6,), False, False),
    "ppo_f64_coeff_map": ("PPOLoss", {"entropy_coeff": COEFFS}, torch.float64, (6,), False, False),
    "clip_aggregated": ("ClipPPOLoss", {}, torch.float32, (6,), True, False),
    "clip_coeff_map_BT": ("ClipPPOLoss", {"entropy_coeff": COEFFS, "reduction": "none"}, torch.float32, (3, 4), False, False),
    "clip_ingraph_mc3": ("ClipPPOLoss", {"samples_mc_entropy": 3, "clip_value": 0.1}, torch.float64, (3, 4), False, True),
    # TorchRL draws its Monte-Carlo KL before the entropy: no entropy bonus, so no draw to match
    "klpen_beta0": ("KLPENPPOLoss", {"beta": 0.0, "increment": 1.0, "decrement": 1.0, "entropy_bonus": False},
                    torch.float32, (6,), False, False),
    "a2c_no_entropy": ("A2CLoss", {"entropy_bonus": False}, torch.float32, (6,), False, False),
    "a2c_ingraph_f64": ("A2CLoss", {"entropy_bonus": False, "reduction": "sum"}, torch.float64, (3, 4), False, True),
    "reinforce": ("ReinforceLoss", {}, torch.float32, (6,), False, False),
    "reinforce_ingraph": ("ReinforceLoss", {"reduction": "none"}, torch.float64, (3, 4), False, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_composite_parity_outputs_and_gradients(case):
    loss_name, opts, dtype, shape, aggregated, ingraph = CASES[case]
    samples = opts.get("samples_mc_entropy", 1)
    mine, theirs, nets, _, _ = _run(loss_name, opts, dtype, shape, aggregated, ingraph, samples)
    skip = ("kl", "loss_objective") if loss_name == "KLPENPPOLoss" else ()
    compare(mine, theirs, nets.params(), dtype, skip=skip)
    if loss_name != "KLPENPPOLoss":
        return
    # beta = 0: the objective is the plain surrogate in both (TorchRL's KL is a Monte-Carlo draw)
    assert_close(mine["loss_objective"], theirs["loss_objective"], dtype, "loss_objective")


def test_a2c_composite_entropy_is_torchrl_ppos():
    """TorchRL's A2C fails on this composite's entropy; its PPO's ``entropy``/``loss_entropy``
    (closed form per head, Monte Carlo for TanhNormal) are the reference for ours."""
    ppo, ppo_theirs, nets, _, _ = _run("PPOLoss", {"entropy_coeff": COEFFS})
    a2c = ro.A2CLoss(nets.actor, nets.critic, entropy_coeff=COEFFS)
    data = make_composite_data(nets, (6,))
    torch.manual_seed(11)
    data["entropy_noise_throttle"] = torch.randn(1, 6, ACT)
    out = a2c.compute_all(**{k: v for k, v in data.items() if k in a2c.accepted_keys})
    for key in ("entropy", "loss_entropy", *(f"composite_entropy_action_{h}_entropy" for h in HEADS)):
        assert_close(out[key], ppo_theirs[key], torch.float32, key)


def test_klpen_composite_kl_is_the_sum_of_head_kls():
    import torch.distributions as D

    _, _, nets, ours, kwargs = _run("KLPENPPOLoss", {"beta": 0.5}, torch.float64)
    kl = ours.compute_all(**kwargs)["kl"]
    obs = kwargs["observation"]
    params = nets.actor.dist_params(observation=obs)
    expected = D.kl_divergence(D.Categorical(logits=kwargs["params_move_logits"]),
                               D.Categorical(logits=params["params_move_logits"]))
    for h in ("steer", "throttle"):  # TanhNormal: the KL of the pre-tanh normals (a shared bijection)
        old = D.Independent(D.Normal(kwargs[f"params_{h}_loc"], kwargs[f"params_{h}_scale"]), 1)
        new = D.Independent(D.Normal(params[f"params_{h}_loc"], params[f"params_{h}_scale"]), 1)
        expected = expected + D.kl_divergence(old, new)
    assert_close(kl, expected.detach().unsqueeze(-1), torch.float64, "kl")


def test_composite_refusals_name_the_problem():
    from rlexport.inputs import InputError

    nets = CompositeNets()
    with pytest.raises(InputError, match="missing head 'throttle'"):
        ro.PPOLoss(nets.actor, nets.critic, entropy_coeff={"move": 0.1, "steer": 0.1})
    with pytest.raises(InputError, match="unknown head 'jump'"):
        ro.PPOLoss(nets.actor, nets.critic, entropy_coeff={**COEFFS, "jump": 0.1})
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    data = {k: v for k, v in make_composite_data(nets, (4,)).items() if k in loss.accepted_keys}
    with pytest.raises(InputError, match="not both"):
        loss(**data)
    data.pop("sample_log_prob")
    data.pop("action_steer_log_prob")
    with pytest.raises(TypeError, match="missing input 'action_steer_log_prob'"):
        loss(**data)
    data.pop("action_move")
    with pytest.raises(TypeError, match="action_move"):
        loss(**data)


def test_torchrl_composite_tensordict_goes_straight_in():
    """TorchRL's own nested composite TensorDict (``("action", h)``, ``("action",
    f"{h}_log_prob")``, ``("params", h, p)``) called on our loss: its keys flatten to ours, and
    the outputs are TorchRL's."""
    import torchrl.objectives as tro

    heads = {"move": HEADS["move"], "steer": HEADS["steer"]}  # closed-form entropies: no draws
    nets = CompositeNets(heads=heads)
    tl = tro.ClipPPOLoss(*nets.torchrl())
    tl.set_keys(sample_log_prob=[("action", f"{h}_log_prob") for h in heads], action=[("action", h) for h in heads])
    ours = ro.ClipPPOLoss(nets.actor, nets.critic)
    data = make_composite_data(nets, (6,))
    data.pop("sample_log_prob")
    td = composite_td(nets, data, (6,))
    theirs, mine = tl(td.clone()).flatten_keys("_"), ours(td.clone())
    compare(dict(mine.items()), theirs, nets.params(), torch.float32)
