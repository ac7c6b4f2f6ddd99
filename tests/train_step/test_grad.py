"""export_grad: loss values and gradients in ONNX Runtime vs eager autograd."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from losses import MLPActorCriticPPO, ppo_batch

from rlexport.export.grad import export_grad, functional_loss

# max |ORT - eager autograd| over every gradient, relative to max(1, |grad|)
BOUNDS = {torch.float32: 1e-5, torch.float64: 1e-12}


def _eager(loss, batch):
    loss.zero_grad(set_to_none=True)
    outs = loss(**batch)
    total = sum(o for k, o in zip(loss.out_keys, outs) if k.startswith("loss_"))
    params = [p for p in loss.parameters() if p.requires_grad]
    grads = torch.autograd.grad(total, params, allow_unused=True)
    return [o.detach() for o in outs], {n: g for (n, _), g in zip(loss.named_parameters(), grads)}


@pytest.mark.parametrize("dtype,separate_losses", [(torch.float32, True), (torch.float64, False)])
def test_gradients_match_eager_autograd(tmp_path, dtype, separate_losses):
    torch.manual_seed(1)
    loss = MLPActorCriticPPO(shared=True, separate_losses=separate_losses).to(dtype)
    path = tmp_path / "grad.onnx"
    meta = export_grad(loss, ppo_batch(6, dtype=dtype), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert names == meta["out_keys"]
    for n in (2, 6, 37):  # other batch sizes than the example's
        batch = ppo_batch(n, dtype=dtype, seed=n)
        feed = {f"param.{k}": v.detach().numpy() for k, v in loss.named_parameters()}
        feed.update({f"buffer.{k}": v.numpy() for k, v in loss.named_buffers()})
        feed.update({k: v.numpy() for k, v in batch.items()})
        got = dict(zip(names, sess.run(None, feed)))
        outs, grads = _eager(loss, batch)
        for key, value in zip(loss.out_keys, outs):
            np.testing.assert_allclose(got[key], value.numpy(), rtol=BOUNDS[dtype] * 10, atol=BOUNDS[dtype])
        for name, g in grads.items():
            err = np.abs(got[f"grad.{name}"] - g.numpy()).max() / max(1.0, g.abs().max().item())
            assert err <= BOUNDS[dtype], (name, n, err)
        # separate_losses lives in the loss: the critic loss gives the shared trunk no gradient
        if separate_losses:
            loss.zero_grad(set_to_none=True)
            _, _, loss_critic, _, _ = loss(**batch)
            assert torch.autograd.grad(loss_critic, loss.trunk[0].weight, allow_unused=True)[0] is None


def test_grad_graph_signature_and_metadata(tmp_path):
    torch.manual_seed(0)
    loss = MLPActorCriticPPO(shared=False)
    path = tmp_path / "g.onnx"
    meta = export_grad(loss, ppo_batch(5), path, golden=False)
    model = onnx.load(path)
    inputs = [i.name for i in model.graph.input]
    assert inputs[:4] == ["param.actor.0.weight", "param.actor.0.bias", "param.actor.2.weight", "param.actor.2.bias"]
    assert "buffer.entropy_coef" in inputs and inputs[-5:] == list(ppo_batch(2))
    # parameters are inputs, not baked constants
    assert not any(i.name.startswith("param.") for i in model.graph.initializer)
    outs = [o.name for o in model.graph.output]
    assert outs[:5] == list(loss.out_keys) and outs[5] == "grad.actor.0.weight"
    # dynamic batch dim named "batch"
    obs = next(i for i in model.graph.input if i.name == "observation")
    assert obs.type.tensor_type.shape.dim[0].dim_param == "batch"
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["rlexport.kind"]) == "grad"
    assert json.loads(props["rlexport.input_names"]) == inputs
    assert meta["outputs"]["grad.critic.2.bias"]["param"] == "param.critic.2.bias"
    assert (tmp_path / "g.json").is_file() and not (tmp_path / "g.golden").exists()


def test_unused_parameter_is_frozen(tmp_path):
    torch.manual_seed(0)
    loss = MLPActorCriticPPO(shared=False)
    loss.unused = torch.nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="unused"):
        fl = functional_loss(loss, ppo_batch(4))
    assert "unused.weight" in fl.buffers and "unused.weight" not in fl.params
    assert "actor.0.weight" in fl.params
