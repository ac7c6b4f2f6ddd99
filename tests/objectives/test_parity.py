"""Parity with TorchRL 0.14.1: the same nn.Module weights and the same inputs through TorchRL's
loss (TensorDict call) and rlexport's (keyword call); every output TorchRL writes and the
gradient of every ``loss_*`` output with respect to every parameter must agree within 1e-6
relative (float32) / 1e-10 (float64).

Where TorchRL samples (TanhNormal has no closed-form entropy or KL: Monte-Carlo estimates),
the draws are fixed: TorchRL runs right after ``torch.manual_seed(11)`` and rlexport receives
the very same standard-normal draws as its ``entropy_noise`` input, so the Monte-Carlo entropy
is compared exactly too. (KL between TanhNormals is closed-form in TorchRL: torch's rule for a
pair of transformed distributions; rlexport uses the same.)

KLPEN: TorchRL multiplies its ``beta`` buffer in place inside forward, after using it, so its
*gradient* uses the updated beta (see ``test_klpen_torchrl_gradient_uses_updated_beta``). The
parity configurations of KLPEN use ``increment = decrement = 1`` (beta constant) so values and
gradients are comparable; beta's update itself is checked against TorchRL separately.
"""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
from helpers import EXACT_GAE, KINDS, assert_close, Nets, compare, exact_torchrl_buffers, make_data, mc_noise, quiet, to_td

quiet()

LOSSES = ("A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "ReinforceLoss")

# name -> (constructor options, batch shape, advantage computed in-graph, shared trunk)
CONFIGS = {
    "default": ({}, (6,), False, False),
    "sum_l1": ({"reduction": "sum", "loss_critic_type": "l1"}, (6,), False, False),
    "none_l2_clipvalue": ({"reduction": "none", "loss_critic_type": "l2", "clip_value": 0.1}, (6,), False, False),
    "BT_no_entropy": ({"entropy_bonus": False, "clip_value": 0.05}, (3, 5), False, False),
    "shared_separate": ({"separate_losses": True, "clip_value": 0.1}, (7,), False, True),
    "shared_joint": ({"separate_losses": False, "reduction": "sum"}, (3, 4), False, True),
    "coeffs_mc3": ({"entropy_coeff": 0.05, "critic_coeff": 0.5, "samples_mc_entropy": 3}, (6,), False, False),
    "normalize": ({"normalize_advantage": True}, (3, 5), False, False),
    "normalize_exclude": ({"normalize_advantage": True, "normalize_advantage_exclude_dims": (0,)}, (3, 5), False, False),
    "ingraph_flat": ({"reduction": "none"}, (8,), True, False),
    "ingraph_BT_clip": ({"clip_value": 0.2, "loss_critic_type": "l2"}, (3, 5), True, False),
    "ingraph_shared_separate": ({"separate_losses": True, "normalize_advantage": True}, (4, 3), True, True),
}
EXTRA = {
    "ClipPPOLoss": {
        "clip_eps_asym": ({"clip_epsilon": (0.05, 0.3)}, (6,), False, False),
        "clip_value_true": ({"clip_epsilon": 0.1, "clip_value": True}, (3, 4), False, False),
    },
    "KLPENPPOLoss": {
        "klpen_mc2": ({"samples_mc_kl": 2, "beta": 0.5, "dtarg": 0.2}, (6,), False, False),
    },
}
ACCEPTS = {
    "A2CLoss": {"entropy_bonus", "samples_mc_entropy", "entropy_coeff", "critic_coeff", "loss_critic_type",
                "separate_losses", "reduction", "clip_value"},
    "ReinforceLoss": {"loss_critic_type", "separate_losses", "reduction", "clip_value"},
}


def _cases():
    for loss in LOSSES:
        configs = {**CONFIGS, **EXTRA.get(loss, {})}
        for name, (opts, shape, ingraph, shared) in configs.items():
            if loss in ACCEPTS and not set(opts) <= ACCEPTS[loss]:
                continue
            for kind in KINDS:
                for dtype in (torch.float32, torch.float64):
                    # float64 on a subset: the maths is the same code path
                    if dtype is torch.float64 and name not in ("default", "none_l2_clipvalue", "ingraph_BT_clip",
                                                                 "shared_separate", "coeffs_mc3", "klpen_mc2"):
                        continue
                    yield pytest.param(loss, name, kind, dtype, id=f"{loss}-{name}-{kind}-{str(dtype)[6:]}")



def build_pair(loss_name, opts, nets, dtype, ingraph):
    import torchrl.objectives as tro

    opts = dict(opts)
    if loss_name == "KLPENPPOLoss":
        opts.setdefault("increment", 1.0)
        opts.setdefault("decrement", 1.0)
    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, loss_name)(tl_actor, tl_critic, **opts)
    if hasattr(tl.tensor_keys, "sample_log_prob"):
        tl.set_keys(sample_log_prob="sample_log_prob")
    ours = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    if dtype is torch.float64:
        tl.double()
        exact_torchrl_buffers(
            tl,
            entropy_coeff=getattr(ours, "entropy_coeff", None),
            critic_coeff=getattr(ours, "critic_coeff", None),
            clip_value=ours.clip_value,
            clip_epsilon=getattr(ours, "clip_epsilon", None),
            clip_epsilon_low=getattr(ours, "clip_epsilon_low", None),
            clip_epsilon_high=getattr(ours, "clip_epsilon_high", None),
            beta=float(ours.beta) if hasattr(ours, "beta") else None,
        )
    if ingraph and dtype is torch.float64:
        from torchrl.objectives import ValueEstimators as TV

        import rlexport.value as rv

        tl.make_value_estimator(TV.GAE, **EXACT_GAE)
        ours.make_value_estimator(rv.ValueEstimators.GAE, **EXACT_GAE)
    return tl, ours


def run_pair(loss_name, opts, kind, dtype, shape, ingraph, shared, seed=1):
    nets = Nets(kind, dtype, shared=shared)
    tl, ours = build_pair(loss_name, opts, nets, dtype, ingraph)
    data = make_data(nets, shape, seed=seed, with_targets=not ingraph)
    td = to_td(data, shape)
    samples_e = opts.get("samples_mc_entropy", 1)
    if kind == "tanh" and loss_name != "ReinforceLoss":
        # KL between two TanhNormals is closed-form (TorchRL: torch's transformed-pair rule),
        # so the entropy estimate is TorchRL's only draw.
        data["entropy_noise"] = mc_noise(nets, shape, samples_e)
    kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys}
    torch.manual_seed(11)
    theirs = tl(td)
    mine = ours.compute_all(**kwargs)
    return mine, theirs, nets


@pytest.mark.parametrize("loss_name,config,kind,dtype", list(_cases()))
def test_parity_outputs_and_gradients(loss_name, config, kind, dtype):
    opts, shape, ingraph, shared = {**CONFIGS, **EXTRA.get(loss_name, {})}[config]
    mine, theirs, nets = run_pair(loss_name, opts, kind, dtype, shape, ingraph, shared)
    compare(mine, theirs, nets.params(), dtype)


@pytest.mark.parametrize("loss_name", ["PPOLoss", "ClipPPOLoss", "A2CLoss"])
def test_keyword_call_matches_torchrl_keyword_call(loss_name):
    """TorchRL's own keyword interface (``loss(observation=..., next_reward=...)``, as in its
    ``test_ppo_notensordict``) against ours: same tuple, same order."""
    import torchrl.objectives as tro

    nets = Nets("normal", torch.float32)
    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, loss_name)(tl_actor, tl_critic)
    ours = getattr(ro, loss_name)(nets.actor, nets.critic)
    if loss_name != "A2CLoss":
        tl.set_keys(sample_log_prob="sample_log_prob")
    data = make_data(nets, (6,), with_targets=False)
    tl_kwargs = {k: v for k, v in data.items() if k.replace("next_", "", 1) in ("observation", "action", "sample_log_prob", "reward", "done", "terminated")}
    if loss_name == "A2CLoss":
        tl_kwargs.pop("sample_log_prob")
    theirs = tl(**tl_kwargs)
    mine = ours(**tl_kwargs)
    assert list(ours.out_keys) == list(tl.out_keys)
    assert len(mine) == len(theirs)
    for a, b, k in zip(mine, theirs, ours.out_keys):
        assert_close(a, b, torch.float32, k)


def test_klpen_beta_update_matches_torchrl():
    """beta_next equals TorchRL's buffer after its call, for a growing, a shrinking and a kept beta."""
    import torchrl.objectives as tro

    for dtarg, expect in ((1e-4, "up"), (1e3, "down"), (None, "same")):
        nets = Nets("normal")
        data = make_data(nets, (6,))
        tl_actor, tl_critic = nets.torchrl()
        if dtarg is None:
            probe = ro.KLPENPPOLoss(nets.actor, nets.critic)
            kl = probe.compute_all(**{k: v for k, v in data.items() if k in probe.accepted_keys})["kl"]
            dtarg = float(kl.mean())
        tl = tro.KLPENPPOLoss(tl_actor, tl_critic, dtarg=dtarg, beta=0.5)
        tl.set_keys(sample_log_prob="sample_log_prob")
        ours = ro.KLPENPPOLoss(nets.actor, nets.critic, dtarg=dtarg, beta=0.5)
        kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys}
        out = dict(zip(ours.out_keys, ours(**kwargs)))
        tl(to_td(data, (6,)))
        assert float(ours.beta) == 0.5, "forward must not change the module's beta"
        torch.testing.assert_close(out["beta_next"].float(), tl.beta.float())
        assert {"up": 1.0, "down": 0.25, "same": 0.5}[expect] == pytest.approx(float(out["beta_next"]))
        # beta as an explicit input
        out2 = dict(zip(ours.out_keys, ours(**kwargs, beta=torch.tensor(2.0))))
        assert float(out2["beta_next"]) == pytest.approx({"up": 4.0, "down": 1.0, "same": 2.0}[expect])
        # the eager convenience path updates the module, as TorchRL's forward does
        ours.forward_and_update(**kwargs)
        assert float(ours.beta) == pytest.approx(float(tl.beta))
        ours.reset()
        assert float(ours.beta) == 0.5


def test_klpen_torchrl_gradient_uses_updated_beta():
    """Documents a TorchRL 0.14.1 divergence: its loss value uses beta but its gradient uses
    beta_next (``self.beta.data *= increment`` after the product was recorded). rlexport's
    gradient is that of its value; feeding ``beta=beta_next`` reproduces TorchRL's gradient."""
    import torchrl.objectives as tro

    nets = Nets("normal")
    data = make_data(nets, (6,))
    tl_actor, tl_critic = nets.torchrl()
    tl = tro.KLPENPPOLoss(tl_actor, tl_critic, dtarg=1e-4, increment=2.0, entropy_bonus=False)
    tl.set_keys(sample_log_prob="sample_log_prob")
    ours = ro.KLPENPPOLoss(nets.actor, nets.critic, dtarg=1e-4, increment=2.0, entropy_bonus=False)
    kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys}
    params = nets.params()
    theirs = tl(to_td(data, (6,)))
    g_theirs = torch.autograd.grad(theirs["loss_objective"], params[:4], allow_unused=True)
    mine = ours.compute_all(**kwargs)
    torch.testing.assert_close(mine["loss_objective"], theirs["loss_objective"])
    g_mine = torch.autograd.grad(mine["loss_objective"], params[:4])
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(g_mine, g_theirs))
    mine_next = ours.compute_all(**kwargs, beta=mine["beta_next"])
    g_next = torch.autograd.grad(mine_next["loss_objective"], params[:4])
    for a, b in zip(g_next, g_theirs):
        assert_close(a, b, torch.float32, "d loss_objective / d param", grad=True)


@pytest.mark.parametrize("loss_name", ["A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "ReinforceLoss"])
def test_nan_next_observation_at_terminated_steps_matches_torchrl(loss_name):
    """A loss computing GAE itself, with NaN next observations after terminal steps (and one
    truncation): finite outputs and gradients, equal to TorchRL's."""
    nets = Nets("normal", torch.float32)
    tl, ours = build_pair(loss_name, {}, nets, torch.float32, True)
    shape = (3, 6)
    data = make_data(nets, shape, seed=5, with_targets=False)
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    done[0, 2] = done[1, 4] = done[2, 5] = True
    term = done.clone()
    term[1, 4] = False
    data.update(next_done=done, next_terminated=term)
    data["next_observation"][done.squeeze(-1)] = float("nan")
    td = to_td(data, shape)
    td.names = [None, "time"]
    theirs = tl(td)
    mine = ours.compute_all(**{k: v for k, v in data.items() if k in ours.accepted_keys})
    for k, v in mine.items():
        assert torch.isfinite(v).all(), k
    compare(mine, theirs, nets.params(), torch.float32)


@pytest.mark.parametrize("loss_name", ["PPOLoss", "ClipPPOLoss", "KLPENPPOLoss"])
def test_torchrl_default_log_prob_key_without_set_keys(loss_name):
    """TorchRL 0.14.1 reads ``action_log_prob`` by default (what its actors and ours write);
    ours takes it too, without ``set_keys``: the same values and gradients as TorchRL's."""
    import torchrl.objectives as tro

    from rlexport.tensordict import call_loss

    nets = Nets("normal", torch.float32)
    tl_actor, tl_critic = nets.torchrl()
    opts = {"increment": 1.0, "decrement": 1.0} if loss_name == "KLPENPPOLoss" else {}  # beta fixed: see above
    tl = getattr(tro, loss_name)(tl_actor, tl_critic, **opts)
    ours = getattr(ro, loss_name)(nets.actor, nets.critic, **opts)
    assert tl.tensor_keys.sample_log_prob == "action_log_prob"
    data = make_data(nets, (6,), with_targets=True)
    td = to_td(data, (6,), log_prob_key="action_log_prob")
    theirs = tl(td.clone())
    mine = call_loss(ours, td.clone())
    compare(dict(mine.items()), theirs, nets.params(), torch.float32)
    canonical = {k: v for k, v in data.items() if k in ours.accepted_keys}
    alias = {("action_log_prob" if k == "sample_log_prob" else k): v for k, v in canonical.items()}
    for a, b in zip(ours(**alias), ours(**canonical)):
        assert torch.equal(a, b)


def test_both_log_prob_keys_is_an_error_and_set_keys_turns_the_alias_off():
    from rlexport.inputs import InputError

    nets = Nets("categorical", torch.float32)
    loss = ro.ClipPPOLoss(nets.actor, nets.critic)
    data = {k: v for k, v in make_data(nets, (4,)).items() if k in loss.accepted_keys and not k.startswith("next_")}
    with pytest.raises(InputError, match="got both 'sample_log_prob' and 'action_log_prob'"):
        loss(**data, action_log_prob=data["sample_log_prob"])
    loss.set_keys(sample_log_prob="my_log_prob")
    assert loss.input_aliases == {}
    data["my_log_prob"] = data.pop("sample_log_prob")
    loss(**data)
    with pytest.raises(TypeError, match="unknown input 'action_log_prob'"):
        loss(**data, action_log_prob=data["my_log_prob"])
