"""BoundTrainStep (I/O-bound, alternating state buffers) against torch.optim and OnnxTrainer.step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from losses import ppo_batch

from rlexport.export.train_step import eager_train_steps
from rlexport.runtime.trainer import BoundTrainStep, OnnxTrainer


def test_bound_steps_equal_trainer_steps_and_torch_optim(exported, ppo_loss):
    hp = {"lr": 1e-2, "max_grad_norm": 0.5}
    path = exported("adam", torch.float32, **hp)
    plain, bound_trainer = OnnxTrainer(path), OnnxTrainer(path)
    initial = plain.state_dict()
    k = 12
    batches = [ppo_batch(8, seed=200 + i) for i in range(k)]
    lrs = [hp["lr"] * (1 - i / k) for i in range(k)]
    ref = eager_train_steps(ppo_loss, plain.layout, initial, [(b, {**hp, "lr": lr}) for b, lr in zip(batches, lrs)])
    bound = BoundTrainStep(bound_trainer, batches[0])
    for i, (batch, lr, want) in enumerate(zip(batches, lrs, ref)):
        got_plain = plain.step(batch, lr=lr)
        got = bound.step(batch, lr=lr)
        for key, value in got_plain.items():  # the same graph: the same numbers, bit for bit
            np.testing.assert_array_equal(got[key], value, err_msg=f"step {i} {key}")
        for name in plain.state:
            np.testing.assert_array_equal(bound_trainer.state[name], plain.state[name], err_msg=f"step {i} {name}")
        for n in plain.layout.params:  # and torch.optim's within the train step's bound
            np.testing.assert_allclose(bound_trainer.state[f"param.{n}"], want[f"new.param.{n}"].numpy(), atol=1e-5, rtol=0)
        if i == 5:  # a state loaded from outside is picked up by the next step
            plain.load_state_dict(initial)
            bound_trainer.load_state_dict(initial)
            ref[i + 1:] = eager_train_steps(ppo_loss, plain.layout, initial,
                                            [(b, {**hp, "lr": lr}) for b, lr in zip(batches[i + 1:], lrs[i + 1:])])
    assert bound_trainer.steps_taken == k


def test_bound_step_refuses_a_wrong_batch(exported):
    trainer = OnnxTrainer(exported("adam", torch.float32, lr=1e-2, max_grad_norm=0.5))
    batch = ppo_batch(8)
    with pytest.raises(TypeError, match="advantage"):
        BoundTrainStep(trainer, {k: v for k, v in batch.items() if k != "advantage"})
    bound = BoundTrainStep(trainer, batch)
    with pytest.raises(ValueError, match="broadcast"):
        bound.step(ppo_batch(5))
