"""TorchRL 0.14.1 options of the losses (issue 14), each against TorchRL's own loss with the same
weights and data (values and gradients, :func:`helpers.compare`)."""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
import rlexport.value as rv
from helpers import EXACT_GAE, Nets, compare, exact_torchrl_buffers, make_data, quiet, to_td

quiet()


def _mode_actions(nets: Nets, data: dict) -> dict:
    """Actions at the actor's mode: TorchRL's V-trace takes the target log-prob of the actor's
    deterministic sample, rlexport's that of the taken action; at the mode they agree."""
    with torch.no_grad():
        dist = nets.actor.get_dist(observation=data["observation"])
        data["action"] = dist.logits.argmax(-1) if nets.kind == "categorical" else dist.loc
    return data


@pytest.mark.parametrize("loss_name", ["A2CLoss", "ReinforceLoss"])
@pytest.mark.parametrize("kind", ["categorical", "normal"])
def test_vtrace_estimator_in_a2c_and_reinforce_matches_torchrl(loss_name, kind):
    import torchrl.objectives as tro
    from tensordict.nn import InteractionType, set_interaction_type

    nets = Nets(kind, torch.float64)
    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, loss_name)(tl_actor, tl_critic).double()
    ours = getattr(ro, loss_name)(nets.actor, nets.critic)
    exact_torchrl_buffers(tl, entropy_coeff=getattr(ours, "entropy_coeff", None), critic_coeff=getattr(ours, "critic_coeff", None))
    tl.set_keys(sample_log_prob="sample_log_prob")
    tl.make_value_estimator(tro.ValueEstimators.VTrace, gamma=EXACT_GAE["gamma"])
    ours.make_value_estimator(rv.ValueEstimators.VTrace, gamma=EXACT_GAE["gamma"])
    assert "sample_log_prob" in ours.in_keys
    shape = (3, 5)
    data = _mode_actions(nets, make_data(nets, shape, seed=3, with_targets=False))
    td = to_td(data, shape)
    td.names = [None, "time"]
    with set_interaction_type(InteractionType.DETERMINISTIC):
        theirs = tl(td)
    mine = ours.compute_all(**{k: v for k, v in data.items() if k in ours.accepted_keys})
    compare(mine, theirs, nets.params(), torch.float64)


@pytest.mark.parametrize("loss_name", ["A2CLoss", "ClipPPOLoss", "ReinforceLoss"])
def test_set_keys_reaches_the_value_estimator_as_in_torchrl(loss_name):
    """``loss.set_keys(...)`` renames the estimator's keys too (before and after
    ``make_value_estimator``); the loss computing the advantage in-graph with renamed inputs
    gives TorchRL's numbers."""
    import torchrl.objectives as tro

    nets = Nets("categorical", torch.float64)
    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, loss_name)(tl_actor, tl_critic).double()
    ours = getattr(ro, loss_name)(nets.actor, nets.critic)
    exact_torchrl_buffers(tl, entropy_coeff=getattr(ours, "entropy_coeff", None), critic_coeff=getattr(ours, "critic_coeff", None),
                          clip_epsilon=getattr(ours, "clip_epsilon", None))
    renamed = dict(advantage="adv", value_target="target", reward="rew", done="finished", terminated="ended")
    for loss in (tl, ours):
        loss.make_value_estimator(tro.ValueEstimators.GAE, **EXACT_GAE)
        loss.set_keys(**renamed)
    tl.set_keys(sample_log_prob="sample_log_prob")
    for name, value in renamed.items():
        assert getattr(ours.value_estimator.tensor_keys, name) == getattr(tl.value_estimator.tensor_keys, name) == value
    ours.make_value_estimator(rv.ValueEstimators.GAE, **EXACT_GAE)  # a new estimator gets the loss's keys
    assert ours.value_estimator.tensor_keys.reward == "rew"
    shape = (2, 5)
    data = make_data(nets, shape, seed=7, with_targets=False)
    data = {{"next_reward": "next_rew", "next_done": "next_finished", "next_terminated": "next_ended"}.get(k, k): v
            for k, v in data.items()}
    td = to_td(data, shape)
    td.names = [None, "time"]
    theirs = tl(td)
    mine = ours.compute_all(**{k: v for k, v in data.items() if k in ours.accepted_keys})
    compare(mine, theirs, nets.params(), torch.float64)


def _perturb_critic(nets: Nets) -> None:
    """An update of the critic after the losses were built (what a target network lags behind)."""
    with torch.no_grad():
        for p in nets.critic_module.parameters():
            p.add_(0.3 * torch.randn_like(p))


def test_reinforce_delay_value_matches_torchrl_and_exports():
    """``ReinforceLoss(delay_value=True)``: the next value comes from a target copy of the critic
    taken at construction (TorchRL's ``create_target_params``). After the critic moved, values
    and gradients equal TorchRL's; the target parameters are buffers (no gradient, inputs of an
    exported graph like any buffer), and ``update_target_params`` syncs them (``HardUpdate``)."""
    import torchrl.objectives as tro
    from torchrl.objectives import HardUpdate

    nets = Nets("normal", torch.float64)
    tl_actor, tl_critic = nets.torchrl()
    tl = tro.ReinforceLoss(tl_actor, tl_critic, delay_value=True).double()
    ours = ro.ReinforceLoss(nets.actor, nets.critic, delay_value=True)
    for loss in (tl, ours):
        loss.make_value_estimator(tro.ValueEstimators.GAE, **EXACT_GAE)
    assert [n for n, _ in ours.target_critic_network.named_parameters()] == []
    _perturb_critic(nets)
    shape = (3, 4)
    data = make_data(nets, shape, seed=8, with_targets=False)
    kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys}
    td = to_td(data, shape)
    td.names = [None, "time"]
    compare(ours.compute_all(**kwargs), tl(td.clone()), nets.params(), torch.float64)
    plain = ro.ReinforceLoss(nets.actor, nets.critic).make_value_estimator(rv.ValueEstimators.GAE, **EXACT_GAE)
    assert not torch.equal(ours(**kwargs)[0], plain(**kwargs)[0])  # the target lags behind the critic

    program = torch.export.export(ours, (), kwargs=kwargs)
    assert any("target_critic_network" in name for name in program.graph_signature.inputs_to_buffers.values())
    for a, b in zip(program.module()(**kwargs), ours(**kwargs)):
        assert torch.equal(a, b)

    HardUpdate(tl, value_network_update_interval=1).step()
    ours.update_target_params()
    compare(ours.compute_all(**kwargs), tl(td.clone()), nets.params(), torch.float64)
    for a, b in zip(ours(**kwargs), plain(**kwargs)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("loss_name", ["A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss", "ReinforceLoss"])
def test_reset_and_reset_parameters_recursive(loss_name):
    """``reset()`` on every loss (TorchRL's LossModule API; KLPEN restores beta) and
    ``reset_parameters_recursive()``: the networks re-initialised exactly as tensordict's
    ``TensorDictModule.reset_parameters_recursive`` re-initialises the same modules (same seed,
    actor then critic)."""
    import copy

    from tensordict.nn import TensorDictModule

    nets = Nets("categorical")
    loss = getattr(ro, loss_name)(nets.actor, nets.critic)
    loss.reset()
    if loss_name == "KLPENPPOLoss":
        loss.beta.fill_(3.0)
        loss.reset()
        assert float(loss.beta) == 1.0
    reference = copy.deepcopy((nets.actor_module, nets.critic_module))
    before = [p.clone() for p in nets.params()]
    torch.manual_seed(5)
    loss.reset_parameters_recursive()
    torch.manual_seed(5)
    for module in reference:
        TensorDictModule(module, ["observation"], ["out"]).reset_parameters_recursive()
    ref_params = [p for m in reference for p in m.parameters()]
    for p, q, old in zip(nets.params(), ref_params, before):
        assert torch.equal(p, q) and not torch.equal(p, old)


@pytest.mark.parametrize("clip_epsilon", [0.2, (0.05, 0.3)])
def test_clip_epsilon_buffers_schedule_as_in_torchrl(clip_epsilon):
    """``clip_epsilon`` is a registered buffer (a pair: ``clip_epsilon_low``/``_high``), in the
    state dict; scheduled in place it clips like TorchRL's scheduled buffer (values and
    gradients); the other flavour cannot be assigned (TorchRL's guard)."""
    import torchrl.objectives as tro

    nets = Nets("normal", torch.float64)
    tl_actor, tl_critic = nets.torchrl()
    tl = tro.ClipPPOLoss(tl_actor, tl_critic, clip_epsilon=clip_epsilon).double()
    tl.set_keys(sample_log_prob="sample_log_prob")
    ours = ro.ClipPPOLoss(nets.actor, nets.critic, clip_epsilon=clip_epsilon)
    names = ["clip_epsilon"] if isinstance(clip_epsilon, float) else ["clip_epsilon_low", "clip_epsilon_high"]
    assert [n for n in dict(ours.named_buffers()) if n.startswith("clip_epsilon")] == names
    assert all(n in ours.state_dict() for n in names)
    for name, value in zip(names, (0.0625, 0.125)):  # dyadic: exact in TorchRL's float32 buffers
        getattr(ours, name).fill_(value)
        getattr(tl, name).fill_(value)
    exact_torchrl_buffers(tl, entropy_coeff=ours.entropy_coeff, critic_coeff=ours.critic_coeff)
    data = make_data(nets, (8,), seed=9)
    theirs = tl(to_td(data, (8,)))
    mine = ours.compute_all(**{k: v for k, v in data.items() if k in ours.accepted_keys})
    assert 0 < float(mine["clip_fraction"]) < 1
    compare(mine, theirs, nets.params(), torch.float64)
    other = "clip_epsilon_low" if isinstance(clip_epsilon, float) else "clip_epsilon"
    with pytest.raises(AttributeError, match="Cannot schedule"):
        setattr(ours, other, 0.1)


@pytest.mark.parametrize("loss_name", ["A2CLoss", "ClipPPOLoss"])
def test_one_selected_output_is_a_tensor_as_in_torchrl(loss_name, tmp_path):
    """TorchRL's keyword call returns the tensor itself when one output is selected; so does
    ours (the same number). Exported, the graph keeps its one output name and validates."""
    import torchrl.objectives as tro

    from rlexport.export import export_onnx
    from rlexport.parity import validate

    nets = Nets("categorical")
    tl_actor, tl_critic = nets.torchrl()
    tl = getattr(tro, loss_name)(tl_actor, tl_critic)
    ours = getattr(ro, loss_name)(nets.actor, nets.critic)
    if loss_name != "A2CLoss":
        tl.set_keys(sample_log_prob="sample_log_prob")
    for loss in (tl, ours):
        loss.select_out_keys("loss_objective")
    data = make_data(nets, (6,), with_targets=False)
    tl_kwargs = {k: v for k, v in data.items() if k.replace("next_", "", 1) in ("observation", "action", "sample_log_prob", "reward", "done", "terminated")}
    if loss_name == "A2CLoss":
        tl_kwargs.pop("sample_log_prob")
    theirs, mine = tl(**tl_kwargs), ours(**tl_kwargs)
    assert isinstance(theirs, torch.Tensor) and isinstance(mine, torch.Tensor)
    torch.testing.assert_close(mine, theirs)
    if loss_name != "ClipPPOLoss":
        return
    example = {k: v for k, v in make_data(nets, (6,)).items() if k in ours.accepted_keys and not k.startswith("next_")}
    path = export_onnx(ours, example, tmp_path / "loss.onnx")
    import onnx

    assert [o.name for o in onnx.load(str(path)).graph.output] == ["loss_objective"]
    assert validate(str(path)).passed


def test_vtrace_with_a_composite_actor_is_refused_by_name():
    from helpers import CompositeNets

    nets = CompositeNets()
    loss = ro.A2CLoss(nets.actor, nets.critic)
    with pytest.raises(NotImplementedError, match="V-trace estimator with a composite actor"):
        loss.make_value_estimator(rv.ValueEstimators.VTrace)
