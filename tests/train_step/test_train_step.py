"""export_train_step + OnnxTrainer: K steps in ONNX Runtime vs K eager torch.optim steps.

Bounds asserted (max |param difference| over K=20 steps, batch size changing every step, lr
changing every step, clip_grad_norm_ active): 1e-5 in float32, 1e-10 in float64.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from losses import ppo_batch

from rlexport.artifact.golden import read_golden
from rlexport.artifact.naming import TrainStepLayout
from rlexport.export.train_step import eager_train_steps
from rlexport.validate import validate_train_step
from rlexport.runtime.trainer import OnnxTrainer

PARAM_BOUND = {torch.float32: 1e-5, torch.float64: 1e-10}


def _batches(k, dtype, sizes=(7, 3, 16, 2, 29, 11)):
    return [ppo_batch(sizes[i % len(sizes)], dtype=dtype, seed=100 + i) for i in range(k)]


@pytest.mark.parametrize(
    "optimizer,dtype,hp",
    [
        ("adam", torch.float32, {"lr": 1e-2, "max_grad_norm": 0.5}),
        ("adam", torch.float64, {"lr": 1e-2, "max_grad_norm": 0.5}),
        ("adamw", torch.float32, {"lr": 5e-3, "weight_decay": 0.1, "betas": (0.8, 0.99), "max_grad_norm": 1.0}),
        ("sgd", torch.float32, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3, "max_grad_norm": 0.5}),
    ],
)
def test_k_steps_match_eager_torch_optim(exported, ppo_loss, optimizer, dtype, hp):
    path = exported(optimizer, dtype, **{k: v for k, v in hp.items()})
    trainer = OnnxTrainer(path)
    layout = trainer.layout
    initial = trainer.state_dict()
    k = 20
    batches = _batches(k, dtype)
    lrs = [hp["lr"] * (0.5 + 0.5 * math.cos(math.pi * i / k)) for i in range(k)]  # cosine schedule
    steps = [(b, {**hp, "lr": lr}) for b, lr in zip(batches, lrs)]
    ref = eager_train_steps(ppo_loss, layout, initial, steps, dtype=dtype)
    worst = 0.0
    for i, ((batch, h), want) in enumerate(zip(steps, ref)):
        got = trainer.step(batch, all_outputs=True, lr=h["lr"])
        for n in layout.params:
            worst = max(worst, (got[f"new.param.{n}"] - want[f"new.param.{n}"]).abs().max().item())
        for key in [*layout.out_keys, "grad_norm"]:
            torch.testing.assert_close(got[key], want[key].to(got[key].dtype), rtol=1e-4 if dtype == torch.float32 else 1e-9,
                                       atol=1e-5 if dtype == torch.float32 else 1e-11, msg=f"step {i} {key}")
        for s in layout.slots:
            name = f"new.{optimizer}.{s}"
            torch.testing.assert_close(got[name], want[name].to(got[name].dtype), rtol=1e-4, atol=PARAM_BOUND[dtype])
    assert worst <= PARAM_BOUND[dtype], worst
    assert trainer.steps_taken == k
    # clipping was active at least once (max_grad_norm below the gradient norm)
    assert any(r["grad_norm"].item() > hp["max_grad_norm"] for r in ref)


def test_lr_schedule_takes_effect_without_reexport(exported, ppo_loss):
    path = exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5)
    a, b, c = OnnxTrainer(path), OnnxTrainer(path), OnnxTrainer(path)
    batch = ppo_batch(8, seed=3)
    a.step(batch)  # recorded default lr 1e-2
    b.step(batch, lr=1e-3)
    c.step(batch, lr=0.0)
    p0 = OnnxTrainer(path).parameters()
    da = max((a.parameters()[n] - p0[n]).abs().max().item() for n in p0)
    db = max((b.parameters()[n] - p0[n]).abs().max().item() for n in p0)
    dc = max((c.parameters()[n] - p0[n]).abs().max().item() for n in p0)
    assert dc == 0.0
    # Adam's first step moves each weight by ~lr
    assert 0.5e-2 < da <= 1.01e-2 and 0.5e-3 < db <= 1.01e-3
    assert b.hyperparams["lr"] == np.float64(1e-3)  # persists, like param_group["lr"]
    b.set_hyperparams(betas=(0.5, 0.6))
    assert b.hyperparams["beta1"] == 0.5 and b.hyperparams["beta2"] == 0.6
    with pytest.raises(TypeError, match="unknown hyper-parameter 'momentum'"):
        b.step(batch, momentum=0.9)


def test_validate_train_step_report(exported, ppo_loss):
    path = exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5)
    report = validate_train_step(path, k=20, loss=ppo_loss)
    assert report.passed, str(report)
    assert report.k == 20 and len(set(report.batch_sizes)) > 5
    assert report.max_abs_param_diff <= 1e-5
    assert "PASSED" in str(report)
    d = report.to_dict()
    assert set(d["max_abs_loss_diff"]) >= {"loss_objective", "loss_critic"}


def test_signature_golden_and_metadata(exported):
    path = exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5)
    model = onnx.load(path)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    def strict(c):
        raise ValueError(f"X.json must be strict JSON (no {c})")

    meta = json.loads((path.parent / (path.stem + ".json")).read_text(), parse_constant=strict)
    assert meta["hyperparams"]["hp.max_grad_norm"] == 0.5
    assert inputs == meta["input_names"] and outputs == meta["out_keys"]
    assert inputs[0] == "param.trunk.0.weight"
    for name in ("adam.exp_avg.trunk.0.weight", "adam.exp_avg_sq.critic.0.bias", "adam.step", "hp.lr", "hp.beta1",
                 "hp.beta2", "hp.eps", "hp.weight_decay", "hp.max_grad_norm", "observation"):
        assert name in inputs, name
    assert outputs[0] == "new.param.trunk.0.weight"
    assert {"new.adam.step", "loss_objective", "loss_critic", "grad_norm"} <= set(outputs)
    assert not any(i.name.startswith(("param.", "adam.")) for i in model.graph.initializer)
    assert meta["state"]["adam.step"] == "new.adam.step"
    assert meta["inputs"]["hp.lr"]["default"] == 1e-2 and meta["inputs"]["hp.lr"]["dtype"] == "float64"
    assert meta["inputs"]["observation"]["shape"] == ["batch", 5]
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["rlexport.kind"] == "train_step" and props["rlexport.state"] == meta["state"]
    # golden: state and initial_state name the same inputs; cases hold only hp + batch; outputs all
    g = read_golden(path)
    assert g.kind == "train_step" and sorted(g.state) == sorted(g.initial_state)
    assert len(g.cases) >= 3 and len({c.inputs["observation"].shape[0] for c in g.cases}) == len(g.cases)
    assert len({float(c.inputs["hp.lr"]) for c in g.cases}) == len(g.cases)
    for c in g.cases:
        assert sorted(set(c.inputs) | set(g.state)) == sorted(inputs)
        assert sorted(c.outputs) == sorted(outputs)
    layout = TrainStepLayout.from_json(meta["layout"])
    assert layout.input_names == inputs and layout.output_names == outputs


def test_state_dict_roundtrip_and_back_to_torch(exported, ppo_loss):
    import copy

    path = exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5)
    trainer = OnnxTrainer(path)
    batches = _batches(6, torch.float32)
    for b in batches[:3]:
        trainer.step(b)
    sd = trainer.state_dict()
    other = OnnxTrainer(path)
    other.load_state_dict(sd)
    for b in batches[3:]:
        ra, rb = trainer.step(b), other.step(b)
        assert ra == rb
    # copy the weights back into a torch loss; continue eagerly with the same optimizer state
    loss = copy.deepcopy(ppo_loss)
    trainer.export_parameters_to(loss)
    for n, p in trainer.parameters().items():
        assert torch.equal(dict(loss.named_parameters())[n].detach(), p)
    opt = trainer.to_torch_optimizer(loss)
    batch = ppo_batch(9, seed=42)
    want = trainer.step(batch, all_outputs=True)
    opt.zero_grad()
    outs = loss(**batch)
    sum(o for k, o in zip(loss.out_keys, outs) if k.startswith("loss_")).backward()
    torch.nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
    opt.step()
    for n, p in loss.named_parameters():
        torch.testing.assert_close(p.detach(), want[f"new.param.{n}"], rtol=0, atol=1e-6)
    # a sub-module with its prefix
    actor = copy.deepcopy(ppo_loss.actor)
    trainer.export_parameters_to(actor, prefix="actor.")
    torch.testing.assert_close(actor[0].weight.detach(), trainer.parameters()["actor.0.weight"])
    with pytest.raises(KeyError, match="prefix="):
        trainer.export_parameters_to(copy.deepcopy(ppo_loss.actor))
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"param.actor.0.weight": sd["param.actor.0.weight"]})


def test_batch_errors_name_the_key(exported):
    trainer = OnnxTrainer(exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5))
    batch = ppo_batch(4)
    del batch["advantage"]
    with pytest.raises(TypeError, match="missing input 'advantage'"):
        trainer.step(batch)
    # float64 batch into a float32 graph is cast; ints stay exact
    trainer.step(ppo_batch(4, dtype=torch.float64))


def test_load_module_starts_fresh_from_torch_weights(exported, ppo_loss):
    path = exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5)
    golden_start = OnnxTrainer(path).state_dict()
    trainer = OnnxTrainer(path)
    trainer.step(ppo_batch(5))
    trainer.load_module(ppo_loss)  # parameters from the module, optimizer state zeros, step 0
    for k, v in trainer.state_dict().items():
        torch.testing.assert_close(v, golden_start[k], rtol=0, atol=0, msg=k)


def test_export_refuses_bad_arguments(tmp_path, ppo_loss):
    from rlexport.export.train_step import export_train_step

    with pytest.raises(ValueError, match="choose one of"):
        export_train_step(ppo_loss, ppo_batch(4), tmp_path / "x.onnx", "rmsprop")
    with pytest.raises(TypeError, match="unknown hyper-parameter 'momentum'"):
        export_train_step(ppo_loss, ppo_batch(4), tmp_path / "x.onnx", "adam", hyperparams={"momentum": 0.9})
    with pytest.raises(ValueError, match="at least 2"):
        export_train_step(ppo_loss, ppo_batch(1), tmp_path / "x.onnx", "adam")
    assert not (tmp_path / "x.onnx").exists()
