"""`rlexport to-onnx --loss kl-ppo`: β is a 0-d graph input and ``beta_next`` a 0-d output, so a
host carries β from one step to the next (TorchRL's KLPENPPOLoss keeps it as module state)."""

from __future__ import annotations

import numpy as np
import onnx

from rlexport.artifact.golden import read_golden
from rlexport.runtime.load import load_artifact


def test_kl_ppo_graph_takes_beta_and_returns_beta_next(run_cli, tmp_path):
    path = tmp_path / "kl.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "kl-ppo", "-o", path)
    assert code == 0, out
    graph = onnx.load(str(path)).graph
    beta_in = next(i for i in graph.input if i.name == "beta")
    assert len(beta_in.type.tensor_type.shape.dim) == 0
    run = load_artifact(path).runner("onnx-cpu")
    inputs = dict(read_golden(tmp_path / "kl.golden").cases[0].inputs)
    got = {}
    for beta in (1.0, 3.0):
        got[beta] = run({**inputs, "beta": np.array(beta, dtype=inputs["beta"].dtype)})
    assert got[1.0]["beta_next"].shape == ()
    # beta_next = beta * (increment | decrement | 1), a factor that does not depend on beta
    np.testing.assert_allclose(got[3.0]["beta_next"], 3.0 * got[1.0]["beta_next"], rtol=1e-6)
    # loss_objective = mean(beta * KL - r * A): raising beta by 2 adds 2 * mean(KL)
    kl_mean = got[1.0]["kl"].astype(np.float64).mean()
    np.testing.assert_allclose(got[3.0]["loss_objective"] - got[1.0]["loss_objective"], 2 * kl_mean, rtol=1e-4, atol=1e-6)
    assert run_cli("validate", path)[0] == 0
