"""Eager computes what the graph computes: for every loss and every distribution family, the
``torch.export`` program (dynamic batch) and the eager module give the same outputs and the same
parameter gradients, bit for bit (``torch.equal``), on the same inputs."""

from __future__ import annotations

import pytest
import torch

import rlexport.objectives as ro
from helpers import KINDS, Nets, make_data, quiet

quiet()

LOSSES = {
    "A2CLoss": {"entropy_coeff": 0.01, "critic_coeff": 0.5},
    "PPOLoss": {"entropy_coeff": 0.01, "critic_coeff": 0.5, "loss_critic_type": "smooth_l1"},
    "ClipPPOLoss": {"entropy_coeff": 0.01, "critic_coeff": 0.5, "clip_value": 0.2},
    "KLPENPPOLoss": {"entropy_coeff": 0.01, "critic_coeff": 0.5},
    "ReinforceLoss": {},
}


class Positional(torch.nn.Module):
    def __init__(self, loss, names):
        super().__init__()
        self.loss, self.names = loss, list(names)

    def forward(self, *tensors):
        return self.loss(**dict(zip(self.names, tensors)))


def _inputs(loss, nets, batch, seed, ingraph):
    data = make_data(nets, (batch,), seed=seed, with_targets=not ingraph)
    if nets.kind == "tanh":
        g = torch.Generator().manual_seed(seed + 100)
        data["entropy_noise"] = torch.randn(1, batch, 2, generator=g)
    return {k: v for k, v in data.items() if k in loss.accepted_keys and (ingraph or not k.startswith("next_"))}


def _grads(outputs, out_keys, params):
    total = sum(o.sum() for k, o in zip(out_keys, outputs) if k.startswith("loss_") and o.requires_grad)
    return torch.autograd.grad(total, params, allow_unused=True)


@pytest.mark.parametrize("ingraph", [False, True], ids=["advantage", "gae-in-graph"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_exported_program_equals_eager_bit_for_bit(loss_name, kind, ingraph):
    nets = Nets(kind)
    loss = getattr(ro, loss_name)(nets.actor, nets.critic, **LOSSES[loss_name])
    example = _inputs(loss, nets, 6, seed=1, ingraph=ingraph)
    names = list(example)
    batch = torch.export.Dim("batch", min=2, max=4096)
    dims = loss.dynamic_dims(example)
    shapes = tuple({d: batch for d in dims.get(n, {})} or None for n in names)
    program = torch.export.export(Positional(loss, names), tuple(example.values()), dynamic_shapes=(shapes,), strict=False)
    graph = program.module()

    other = _inputs(loss, nets, 9, seed=2, ingraph=ingraph)
    eager_out = loss(**other)
    graph_out = graph(*other.values())
    assert len(eager_out) == len(graph_out) == len(loss.out_keys)
    for key, e, g in zip(loss.out_keys, eager_out, graph_out):
        assert torch.equal(e, g), f"{loss_name}/{kind}: {key} differs: eager {e} vs graph {g}"

    eager_params = list(loss.parameters())
    graph_params = [dict(graph.named_parameters())[f"loss.{n}"] for n, _ in loss.named_parameters()]
    eager_grads = _grads(eager_out, loss.out_keys, eager_params)
    graph_grads = _grads(graph_out, loss.out_keys, graph_params)
    for (name, _), e, g in zip(loss.named_parameters(), eager_grads, graph_grads):
        assert (e is None) == (g is None), name
        assert e is None or torch.equal(e, g), f"{loss_name}/{kind}: d loss / d {name} differs"
