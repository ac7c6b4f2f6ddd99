"""The end of a run through the graph cache: ``policy.onnx`` and ``loss.onnx`` are baked from
cached templates (``rlexport.export.bake``) when the configuration ended a run before. A second
run (another seed: other weights, other normalisation statistics) captures and translates
nothing, and its artifacts carry no parameter input, validate, and compute what a fresh
``export_onnx`` of its final modules computes; a damaged template is discarded (SHA-256) and
exported again."""

import logging

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch

import rlexport.train.artifacts as artifacts
from rlexport.artifact.cache import GraphCache
from rlexport.artifact.golden import read_golden
from rlexport.export import export_onnx
from rlexport.runtime.onnx import make_session, run_session
from rlexport.train import make_config, train
from rlexport.validate import validate

SMALL = dict(engine="onnx", num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1, total_steps=2 * 64,
             normalize_obs=True)


def counting(monkeypatch):
    """Count the end of run's template exports, fresh exports and bakes."""
    calls = []
    for name in ("export_onnx_template", "export_onnx", "bake_onnx"):
        real = getattr(artifacts, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, type(args[0]).__name__ if _name != "bake_onnx" else type(args[1]).__name__))
            return _real(*args, **kwargs)

        monkeypatch.setattr(artifacts, name, wrapper)
    return calls


def run(root, name, seed, cache, monkeypatch):
    calls = counting(monkeypatch)
    seen = {}
    result = train(make_config("ppo", "CartPole-v1", out=str(root / name), seed=seed, **SMALL), cache=cache,
                   on_update=lambda trainer, row: seen.setdefault("trainer", trainer))
    monkeypatch.undo()
    return result, calls, seen["trainer"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("final")
    cache = GraphCache(root / "cache")
    with pytest.MonkeyPatch.context() as mp:
        first = run(root, "a", 1, cache, mp)
        second = run(root, "b", 2, cache, mp)
    return root, cache, first, second


def inits(path) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def ort(path, inputs):
    return run_session(make_session(path, "cpu", threads=1), inputs)


def test_the_first_run_exports_templates_and_bakes(two_runs):
    _, cache, (result, calls, _), _ = two_runs
    assert result.validation_passed
    assert sorted(calls) == sorted([("export_onnx_template", "DeterministicPolicy"), ("bake_onnx", "DeterministicPolicy"),
                                    ("export_onnx_template", "ClipPPOLoss"), ("bake_onnx", "ClipPPOLoss")])
    assert {e.name for e in cache.entries()} >= {"policy_template.onnx", "loss_template.onnx"}


def test_a_cached_end_of_run_bakes_only_and_equals_a_fresh_export(two_runs, tmp_path):
    _, _, (first, _, _), (result, calls, trainer) = two_runs
    assert result.validation_passed
    assert sorted(n for n, _ in calls) == ["bake_onnx", "bake_onnx"]  # nothing captured or translated
    policy_path, loss_path = result.artifacts["policy"], result.artifacts["loss"]
    for path, names in ((policy_path, ["observation"]), (loss_path, trainer.engine.input_names)):
        model = onnx.load(path)
        assert [i.name for i in model.graph.input] == list(names)  # no parameter input left
        assert validate(path).passed
    mine, theirs = (inits(result.artifacts["policy"]), inits(first.artifacts["policy"]))
    assert mine.keys() == theirs.keys()  # one template, the other run's weights and statistics baked in
    assert any(not np.array_equal(mine[k], theirs[k]) for k in mine if k.startswith("lifted_"))

    fresh_policy = export_onnx(artifacts.deploy_policy(trainer), {"observation": torch.zeros(8, 4).normal_()},
                               tmp_path / "policy.onnx")
    obs = {"observation": (np.random.default_rng(0).normal(size=(33, 4)) * 2).astype(np.float32)}
    np.testing.assert_array_equal(ort(policy_path, obs)["action"], ort(fresh_policy, obs)["action"])

    golden = read_golden(loss_path)
    example = {k: torch.from_numpy(v) for k, v in golden.cases[0].inputs.items()}
    fresh_loss = export_onnx(trainer.engine.loss, example, tmp_path / "loss.onnx")
    for case in golden.cases:
        baked, fresh = ort(loss_path, case.inputs), ort(fresh_loss, case.inputs)
        with torch.no_grad():  # the eager loss with the run's final parameters
            eager = dict(zip(trainer.engine.out_keys,
                             trainer.engine.loss(**{k: torch.from_numpy(v) for k, v in case.inputs.items()})))
        for k in fresh:
            np.testing.assert_allclose(baked[k], fresh[k], rtol=1e-5, atol=1e-6, err_msg=k)
            np.testing.assert_allclose(baked[k], eager[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_a_damaged_template_is_discarded_and_exported_again(two_runs, monkeypatch, caplog):
    root, cache, _, _ = two_runs
    entry = next(e for e in cache.entries() if e.name == "policy_template.onnx")
    model_file = entry.path / "artifact" / "policy_template.onnx"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rlexport.cache"):
        result, calls, _ = run(root, "c", 3, cache, monkeypatch)
    assert any("damaged" in r.getMessage() and entry.key in r.getMessage() for r in caplog.records)
    assert result.validation_passed
    assert sorted(calls) == sorted([("export_onnx_template", "DeterministicPolicy"), ("bake_onnx", "DeterministicPolicy"),
                                    ("bake_onnx", "ClipPPOLoss")])
