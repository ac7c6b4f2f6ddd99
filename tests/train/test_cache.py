"""``rlexport train --engine onnx`` start-up through the graph cache: a repeated configuration
exports nothing (exporter calls counted) and resumes bit for bit; the key changes with what
changes a graph and not with the seed; ``--no-cache`` and a damaged entry export again."""

import logging
import shutil

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

import rlexport.train.engines as engines
import rlexport.train.graph_cache as graph_cache
from rlexport.artifact.cache import GraphCache, cache_key
from rlexport.train import TrainError, TrainInterrupted, make_config, train
from rlexport.train.agent import AgentSpec, Sampler, build_agent
from rlexport.train.engines import GaeModule, WithParams, build_loss
from rlexport.train.envs import describe_spaces
from rlexport.train.loop import Trainer
from train_runs import assert_same_checkpoints

GRAPHS = ("act", "gae", "train_step")
SMALL = dict(engine="onnx", num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1, total_steps=3 * 64,
             checkpoint_every=1, export_artifacts=False)


class Exported(Exception):
    """Raised by a stand-in exporter: the run asked for an export."""


def count_exports(monkeypatch, calls, fail=False):
    """Wrap (or, ``fail``: replace by a raise) the two exporters the ONNX engine's start-up calls."""
    for name in ("export_onnx", "export_train_step"):
        real = getattr(engines, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            if fail:
                raise Exported(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(engines, name, wrapper)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One cold run: its folder, its cache (filled by it) and the exporter calls it made."""
    root = tmp_path_factory.mktemp("first")
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        count_exports(mp, calls)
        train(make_config("ppo", "CartPole-v1", out=str(root / "a"), **SMALL), cache=GraphCache(root / "cache"))
    return root / "a", root / "cache", calls


def test_first_run_exports_the_three_graphs_and_stores_them(first_run):
    _, cache, calls = first_run
    assert sorted(calls) == ["export_onnx", "export_onnx", "export_train_step"]
    assert sorted(e.description["kind"] for e in GraphCache(cache).entries()) == sorted(GRAPHS)


def test_a_repeated_configuration_exports_nothing_and_resumes_bit_for_bit(first_run, tmp_path, monkeypatch):
    a, cache, _ = first_run
    calls = []
    count_exports(monkeypatch, calls)
    b = tmp_path / "b"
    with pytest.raises(TrainInterrupted):
        train(make_config("ppo", "CartPole-v1", out=str(b), **SMALL), cache=GraphCache(cache), stop_after_updates=1)
    train(resume=b, cache=GraphCache(cache))
    assert calls == []
    assert_same_checkpoints(a, b)
    for g in GRAPHS:  # the cache's copies, whole: graph, manifest, golden sample
        assert (b / "graphs" / f"{g}.onnx").read_bytes() == (a / "graphs" / f"{g}.onnx").read_bytes()
        assert (b / "graphs" / f"{g}.json").read_bytes() == (a / "graphs" / f"{g}.json").read_bytes()


def test_a_cached_graph_starts_from_the_runs_own_parameters(first_run, tmp_path, monkeypatch):
    """The cached golden sample holds the first run's parameters; another seed's run must not."""
    _, cache, _ = first_run
    calls = []
    count_exports(monkeypatch, calls)
    cfg = make_config("ppo", "CartPole-v1", seed=5, out=str(tmp_path / "s5"), **SMALL)
    trainer = Trainer(cfg, tmp_path / "s5", cache=GraphCache(cache))
    trainer.close()
    assert calls == []
    torch_engine = Trainer(make_config("ppo", "CartPole-v1", seed=5, **{**SMALL, "engine": "torch"}), tmp_path / "t5")
    torch_engine.close()
    expected = torch_engine.engine.state()
    state = trainer.engine.state()
    assert set(state) == set(expected)
    for k, v in expected.items():
        assert torch.equal(state[k].to(v.dtype), v), k


def test_no_cache_exports_again(first_run, tmp_path, monkeypatch):
    _, cache, _ = first_run
    calls = []
    count_exports(monkeypatch, calls, fail=True)
    with pytest.raises(Exported):
        train(make_config("ppo", "CartPole-v1", out=str(tmp_path / "c"), **SMALL), cache=False)
    assert calls == ["export_train_step"]


def test_a_damaged_entry_is_never_used_and_exported_again(first_run, tmp_path, monkeypatch, caplog):
    _, cache, _ = first_run
    mine = GraphCache(shutil.copytree(cache, tmp_path / "cache"))
    entry = next(e for e in mine.entries() if e.description["kind"] == "train_step")
    model = entry.path / "artifact" / "train_step.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    calls = []
    count_exports(monkeypatch, calls, fail=True)
    with caplog.at_level(logging.WARNING, logger="rlexport.cache"), pytest.raises(Exported):
        train(make_config("ppo", "CartPole-v1", out=str(tmp_path / "d"), **SMALL), cache=mine)
    assert calls == ["export_train_step"]
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] != []
    assert len(caplog.records) == 1
    assert not entry.path.exists() and not (tmp_path / "d" / "graphs" / "train_step.onnx").exists()


def test_cli_no_cache_reaches_train(monkeypatch):
    from rlexport.cli.app import app

    seen = {}

    def fake_train(*args, **kwargs):
        seen.update(kwargs)
        raise TrainError("stopped here")

    monkeypatch.setattr("rlexport.train.train", fake_train)
    runner = CliRunner()
    for flags, expected in ((["--no-cache"], False), ([], True)):
        seen.clear()
        res = runner.invoke(app, ["train", "--engine", "onnx", "--total-steps", "512", *flags])
        assert "stopped here" in str(res.exception) and seen["cache"] is expected


# -- the key ----------------------------------------------------------------------------------


def keys(**options):
    """The cache keys of the three start-up graphs of a config (what ``OnnxEngine`` exports)."""
    cfg = make_config("ppo", options.pop("env", "CartPole-v1"), **{"engine": "onnx", **options})
    obs, act = describe_spaces(cfg.env_id)
    spec = AgentSpec(int(obs.shape[0]), act, cfg.box_distribution)
    actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
    loss = build_loss(cfg, actor, critic)
    mb = torch.zeros(cfg.minibatch_size, spec.obs_dim)
    rollout = torch.zeros(cfg.num_envs, cfg.num_steps, spec.obs_dim)
    modules = {
        "train_step": (loss, {"observation": mb}, engines.train_step_hyperparams(cfg, cfg.learning_rate)),
        "act": (WithParams(Sampler(loss.actor_network, spec.kind)), {"observation": rollout[:, 0]}, {}),
        "gae": (WithParams(GaeModule(loss.critic_network, cfg.gamma, cfg.gae_lambda)), {"observation": rollout}, {}),
    }
    return {g: cache_key(graph_cache.graph_description(g, m, ex, opt)) for g, (m, ex, opt) in modules.items()}


def changed(a, b):
    return sorted(g for g in GRAPHS if a[g] != b[g])


def test_the_key_ignores_the_seed_and_follows_what_changes_a_graph():
    base = keys(seed=1)
    assert keys(seed=7) == base  # parameter values are graph inputs
    assert changed(base, keys(clip_coef=0.3)) == ["train_step"]
    assert changed(base, keys(ent_coef=0.0)) == ["train_step"]
    assert changed(base, keys(max_grad_norm=1.0)) == ["train_step"]
    assert changed(base, keys(gamma=0.9)) == ["gae"]
    assert changed(base, keys(num_envs=8, num_steps=64)) == ["act", "gae"]  # the same minibatch size
    assert changed(base, keys(num_minibatches=8)) == ["train_step"]
    assert changed(base, keys(hidden=(32, 32))) == list(GRAPHS)
    assert changed(base, keys(env="Acrobot-v1")) == list(GRAPHS)


def test_the_key_follows_the_versions(monkeypatch):
    base = keys()
    monkeypatch.setattr(torch, "__version__", "99.0")
    assert changed(base, keys()) == list(GRAPHS)
    monkeypatch.undo()
    monkeypatch.setattr(graph_cache, "source_digest", lambda: "edited")  # an edit to rlexport's code
    assert changed(base, keys()) == list(GRAPHS)
    monkeypatch.undo()
    monkeypatch.setattr(graph_cache, "_version", lambda dist: "0.0")  # onnx / onnxruntime / onnxscript
    assert changed(base, keys()) == list(GRAPHS)
    monkeypatch.undo()
    assert keys() == base


def graph_proto(path) -> bytes:
    """The serialized graph without the exporter's per-node debug notes (stack traces hold a
    process-wide counter)."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    return model.graph.SerializeToString()


def test_the_start_up_graphs_embed_no_parameters(first_run, tmp_path):
    """What makes the seed-free key right: the same configuration with another seed, exported
    without the cache, gives the same graph (the act graph: the cheapest to export)."""
    a, _, _ = first_run
    cfg = make_config("ppo", "CartPole-v1", seed=5, out=str(tmp_path / "e"), **SMALL)
    obs, act = describe_spaces(cfg.env_id)
    spec = AgentSpec(int(obs.shape[0]), act, cfg.box_distribution)
    actor, _ = build_agent(spec, cfg.hidden, cfg.seed)
    ex_obs = np.zeros((cfg.num_envs, spec.obs_dim), np.float32)
    ex_noise = spec.draw_noise(np.random.default_rng(0), cfg.num_envs)
    engines.export_param_graph(Sampler(actor, spec.kind), {"observation": ex_obs, "noise": ex_noise},
                               tmp_path / "act.onnx")
    assert graph_proto(tmp_path / "act.onnx") == graph_proto(a / "graphs" / "act.onnx")
