"""Batches with a time axis: [batch, time] both dynamic in the train-step graph, including a
real ClipPPO loss that computes GAE in the graph (the value estimators' doubling scan, unconditional steps in a traced graph)."""

from __future__ import annotations

import torch
from test_train_step_real_losses import HP, _example, _loss

from rlexport.artifact.golden import read_golden
from rlexport.export.grad import export_grad
from rlexport.export.train_step import eager_train_steps, export_train_step
from rlexport.runtime.trainer import OnnxTrainer
from rlexport.validate import validate, validate_train_step

# The one golden-case rule at example batch 4, horizon 9: the example, batch 2B+1, batch 1 at
# horizon 2T+3, batch 3 at T/2 (rlexport.export.plan.golden_inputs).
GOLDEN_SHAPES = [(4, 9), (9, 9), (1, 21), (3, 4)]


def test_real_loss_time_axis_and_in_graph_gae(tmp_path):
    """ClipPPO computing GAE in the graph over [batch, time]: both axes dynamic."""
    ac, ex = _example("cartpole", "clip_ppo", 4, time=9, gae_in_graph=True)
    loss = _loss("clip_ppo", ac)
    path = tmp_path / "gae_step.onnx"
    meta = export_train_step(loss, ex, path, "adam", hyperparams=HP)
    assert meta["inputs"]["observation"]["shape"] == ["batch", "time", 4]
    trainer = OnnxTrainer(path)
    steps = []
    for i, (b, t) in enumerate([(4, 9), (3, 17), (6, 5), (2, 33)]):
        _, bex = _example("cartpole", "clip_ppo", b, time=t, gae_in_graph=True, seed=10 + i)
        steps.append((bex, HP))
    ref = eager_train_steps(loss, trainer.layout, trainer.state_dict(), steps)
    worst = 0.0
    for (batch, _), want in zip(steps, ref):
        got = trainer.step(batch, all_outputs=True)
        worst = max(worst, max((got[f"new.param.{n}"] - want[f"new.param.{n}"]).abs().max().item()
                               for n in trainer.layout.params))
        torch.testing.assert_close(got["loss_objective"], want["loss_objective"], rtol=1e-4, atol=1e-5)
    assert worst <= 1e-5, worst


def test_time_axis_own_loss(tmp_path):
    """A [batch, time] batch: both axes dynamic; steps at other batch sizes and horizons."""
    from losses import CategoricalA2C, a2c_batch

    torch.manual_seed(0)
    loss = CategoricalA2C()
    loss.time_dim = -2  # marks the loss as time-capable for the shared dynamic-dims rule
    path = tmp_path / "a2c_time.onnx"
    meta = export_train_step(loss, a2c_batch(4, 9), path, "sgd", hyperparams={"lr": 0.1, "momentum": 0.9, "nesterov": True})
    assert meta["inputs"]["observation"]["shape"] == ["batch", "time", 4]
    assert meta["inputs"]["action"]["shape"] == ["batch", "time"]
    sample = read_golden(tmp_path / "a2c_time.golden")
    assert [tuple(c.inputs["observation"].shape[:2]) for c in sample.cases] == GOLDEN_SHAPES
    assert validate_train_step(path).passed  # the golden steps from the artifact alone
    trainer = OnnxTrainer(path)
    steps = [(a2c_batch(b, t, seed=i), {"lr": 0.1 / (i + 1), "momentum": 0.9, "nesterov": True})
             for i, (b, t) in enumerate([(4, 9), (3, 17), (6, 5), (2, 33), (5, 2)])]
    ref = eager_train_steps(loss, trainer.layout, trainer.state_dict(), steps)
    worst = 0.0
    for (batch, hp), want in zip(steps, ref):
        got = trainer.step(batch, all_outputs=True, lr=hp["lr"])
        worst = max(worst, max((got[f"new.param.{n}"] - want[f"new.param.{n}"]).abs().max().item()
                               for n in trainer.layout.params))
        torch.testing.assert_close(got["loss_objective"], want["loss_objective"], rtol=1e-4, atol=1e-6)
    assert worst <= 1e-5, worst


def test_gradient_golden_covers_batch_1_and_other_horizons(tmp_path):
    """A gradient graph's golden sample follows the same rule as a forward one, and validate checks it."""
    from losses import CategoricalA2C, a2c_batch

    torch.manual_seed(0)
    loss = CategoricalA2C()
    loss.time_dim = -2
    path = tmp_path / "a2c_grad.onnx"
    export_grad(loss, a2c_batch(4, 9), path)
    sample = read_golden(tmp_path / "a2c_grad.golden")
    assert [tuple(c.inputs["observation"].shape[:2]) for c in sample.cases] == GOLDEN_SHAPES
    report = validate(path)
    assert report.passed and report.cases == [c.name for c in sample.cases], report.summary()
