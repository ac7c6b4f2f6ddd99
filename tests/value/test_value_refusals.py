"""Estimators refuse inputs and options they cannot compute correctly, by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlexport.value.functional as O
from rlexport.inputs import InputDtypeError, InputError
from rlexport.modules import ValueOperator
from rlexport.value import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator, VTrace


def _inputs(shape=(2, 5, 1)):
    z = torch.zeros(shape)
    return dict(next_reward=z, next_done=torch.zeros(shape, dtype=torch.bool), state_value=z, next_state_value=z)


ESTIMATORS = [GAE(gamma=0.9, lmbda=0.9), TD0Estimator(gamma=0.9), TD1Estimator(gamma=0.9), TDLambdaEstimator(gamma=0.9, lmbda=0.9)]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("key", ["next_reward", "next_done", "state_value", "next_state_value"])
def test_inputs_without_the_feature_dim_are_refused(est, key):
    est(**_inputs())
    inputs = _inputs()
    inputs[key] = inputs[key].squeeze(-1)  # [B, T]: would be scanned along the batch axis
    with pytest.raises(InputError, match=rf"{type(est).__name__}: input '{key}' has shape \[2, 5\]; expected \[\*batch, T, 1\]"):
        est(**inputs)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_empty_batch_is_refused(est):
    with pytest.raises(InputError, match=r"has shape \[0, 5, 1\]: an empty batch"):
        est(**_inputs((0, 5, 1)))


def test_time_dims_that_differ_are_refused():
    inputs = _inputs()
    inputs["next_state_value"] = torch.zeros(2, 4, 1)
    with pytest.raises(ValueError, match=r"'next_state_value' has shape \[2, 4, 1\]"):
        GAE(gamma=0.9, lmbda=0.9)(**inputs)


def test_value_network_dtype_is_checked_before_it_runs():
    est = GAE(gamma=0.9, lmbda=0.9, value_network=ValueOperator(nn.Linear(3, 1)))
    obs = torch.zeros(2, 5, 3, dtype=torch.float64)
    flags = torch.zeros(2, 5, 1, dtype=torch.bool)
    with pytest.raises(InputDtypeError, match=r"GAE: input 'observation' has dtype torch.float64 but the network's parameters are torch.float32"):
        est(observation=obs, next_observation=obs, next_reward=torch.zeros(2, 5, 1, dtype=torch.float64), next_done=flags)


@pytest.mark.parametrize("make,message", [
    (lambda: GAE(gamma=1.5, lmbda=0.9), r"GAE: gamma=1.5 is out of range; expected a finite value in \[0.0, 1.0\]"),
    (lambda: GAE(gamma=0.9, lmbda=-0.1), r"GAE: lmbda=-0.1 is out of range"),
    (lambda: TD0Estimator(gamma=float("nan")), r"TD0Estimator: gamma=nan is out of range"),
    (lambda: TDLambdaEstimator(gamma=0.9, lmbda=torch.tensor([0.5, 1.2])), r"TDLambdaEstimator: lmbda=1.2\d* is out of range"),
    (lambda: VTrace(gamma=0.9, rho_thresh=0.0), r"VTrace: rho_thresh=0.0 is out of range; expected a finite value in \(0.0, inf\)"),
    (lambda: VTrace(gamma=0.9, c_thresh=-1.0), r"VTrace: c_thresh=-1.0 is out of range"),
    (lambda: O.generalized_advantage_estimate(1.01, 0.9, *[torch.zeros(2, 5, 1)] * 3, torch.zeros(2, 5, 1, dtype=torch.bool)),
     r"gamma=1.01 is out of range"),
])
def test_out_of_range_coefficients_are_refused(make, message):
    with pytest.raises(InputError, match=message):
        make()
