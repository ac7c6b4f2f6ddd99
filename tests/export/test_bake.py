"""``rlexport.export.bake``: a template (parameters and chosen buffers as graph inputs) exported
from one module, baked with another module's values, gives what a fresh ``export_onnx`` of that
module gives: the same signature, no lifted inputs left, outputs equal to the eager module's (and
to the fresh artifact's) at other batch sizes, a golden sample that validates. A template that
does not fit is refused before anything is written."""

import numpy as np
import onnx
import pytest
import torch

import gymnasium as gym
from rlexport.artifact.golden import read_golden
from rlexport.export import ExportError, export_onnx
from rlexport.export.bake import LIFTED_PREFIX, bake_onnx, export_onnx_template
from rlexport.runtime.onnx import make_session, run_session
from rlexport.train.agent import AgentSpec, DeterministicPolicy, build_agent
from rlexport.validate import validate

STATS = ["obs_mean", "obs_std"]


def policy(seed: int, hidden=(16, 16)) -> DeterministicPolicy:
    spec = AgentSpec(4, gym.spaces.Discrete(2), "normal")
    actor, _ = build_agent(spec, hidden, seed)
    gen = np.random.default_rng(seed)
    mean = gen.normal(size=4).astype(np.float32)
    std = (0.5 + gen.random(4)).astype(np.float32)
    return DeterministicPolicy(actor, spec.kind, mean, std, 10.0).eval()


def logits_policy(seed: int) -> torch.nn.Module:
    """The same policy returning its logits (continuous outputs: a numerical comparison)."""

    class Logits(torch.nn.Module):
        def __init__(self, p):
            super().__init__()
            self.p = p
            self.in_keys, self.out_keys = ["observation"], ["logits"]

        def forward(self, observation):
            obs = torch.clamp((observation - self.p.obs_mean) / self.p.obs_std, -self.p.obs_clip, self.p.obs_clip)
            return self.p.actor.get_dist(observation=obs).logits

    return Logits(policy(seed)).eval()


def ort(path, obs: np.ndarray) -> np.ndarray:
    """The one output of the graph at ``path``, in ONNX Runtime."""
    (out,) = run_session(make_session(path, "cpu", threads=1), {"observation": obs}).values()
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "logits_template.onnx"
    module = logits_policy(seed=0)
    example = {"observation": torch.randn(8, 4, generator=torch.Generator().manual_seed(0))}
    export_onnx_template(module, example, path, buffers=["p.obs_mean", "p.obs_std"])
    return path, example


def test_a_baked_template_is_the_fresh_export_of_the_new_weights(template, tmp_path):
    path, example = template
    other = logits_policy(seed=3)  # other weights, other normalisation statistics
    baked = bake_onnx(path, other, example, tmp_path / "logits_baked.onnx", buffers=["p.obs_mean", "p.obs_std"])
    fresh = export_onnx(other, example, tmp_path / "logits_fresh.onnx")
    mb, mf = onnx.load(str(baked)), onnx.load(str(fresh))
    inits = {i.name for i in mb.graph.initializer}
    assert [i.name for i in mb.graph.input if i.name not in inits] == ["observation"]
    assert not any(i.name.startswith(LIFTED_PREFIX) for i in mb.graph.input)  # no parameter input left
    assert [i.name for i in mb.graph.input] == [i.name for i in mf.graph.input if i.name not in
                                                {x.name for x in mf.graph.initializer}]
    assert mb.graph.input[0].type == mf.graph.input[0].type  # dynamic batch, same dim_param
    assert [o.name for o in mb.graph.output] == [o.name for o in mf.graph.output]
    for batch in (1, 5, 37):  # dynamic batch; the eager module with the new values is the reference
        obs = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32) * 3
        with torch.no_grad():
            eager = other(observation=torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(ort(baked, obs), eager, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ort(baked, obs), ort(fresh, obs), rtol=1e-5, atol=1e-6)
    gb, gf = read_golden(baked), read_golden(fresh)
    assert [c.name for c in gb.cases] == [c.name for c in gf.cases]
    for b, f in zip(gb.cases, gf.cases):  # the same golden rule, the same eager references
        assert b.inputs.keys() == f.inputs.keys() and b.outputs.keys() == f.outputs.keys()
        assert all(np.array_equal(b.inputs[k], f.inputs[k]) for k in f.inputs)
        assert all(np.array_equal(b.outputs[k], f.outputs[k]) for k in f.outputs)
    assert validate(baked).passed


def test_baking_the_policy_artifact(tmp_path):
    """The deployable policy (greedy action, normalisation statistics lifted) bakes and validates."""
    example = {"observation": torch.randn(8, 4, generator=torch.Generator().manual_seed(1))}
    t = export_onnx_template(policy(0), example, tmp_path / "policy_template.onnx", buffers=STATS)
    other = policy(5)
    baked = bake_onnx(t, other, example, tmp_path / "policy.onnx", buffers=STATS)
    obs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with torch.no_grad():
        eager = other(observation=torch.from_numpy(obs)).numpy()
    np.testing.assert_array_equal(ort(baked, obs), eager)
    assert validate(baked).passed


def test_a_template_that_does_not_fit_is_refused_and_nothing_written(template, tmp_path):
    path, example = template
    wider = logits_policy(seed=0)
    wider.p = policy(0, hidden=(32, 16))
    dest = tmp_path / "logits.onnx"
    with pytest.raises(ExportError, match="does not fit"):
        bake_onnx(path, wider, example, dest, buffers=["p.obs_mean", "p.obs_std"])
    with pytest.raises(ExportError, match="does not fit"):  # obs_mean left as a constant: inputs differ
        bake_onnx(path, logits_policy(1), example, dest, buffers=["p.obs_std"])
    assert list(tmp_path.iterdir()) == []
