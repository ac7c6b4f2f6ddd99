"""The two update engines behind one interface.

``TorchEngine``: acting, GAE and the update in eager torch (rlexport's loss, ``torch.optim.Adam``,
``clip_grad_norm_``). ``OnnxEngine``: acting through an exported sampler graph, GAE through an
exported estimator graph and the update through the exported train-step graph
(``rlexport.runtime.OnnxTrainer``: loss, gradients, global-norm clipping and Adam in one ONNX
Runtime call); torch is only a container for the parameters the trainer copies back, no autograd
runs in the loop.

Interface: ``act(obs, noise) -> (action, log_prob)``, ``gae(rollout) -> (advantage,
value_target)``, ``update(minibatch, lr) -> {output name: float}``, ``state() -> tensors`` and
``load_state(tensors)`` for checkpoints (parameters ``param.<name>``, optimizer ``opt.<name>``).
All arrays in and out are numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import rlexport.objectives as objectives
from rlexport.artifact.cache import GraphCache
from rlexport.export import export_onnx
from rlexport.export.bake import LiftedTensors
from rlexport.export.plan import as_tuple
from rlexport.export.train_step import export_train_step
from rlexport.runtime.onnx import NUMPY_DTYPE_OF_ORT_TYPE, make_session
from rlexport.runtime.trainer import BoundTrainStep, OnnxTrainer
from rlexport.value import GAE

from .agent import AgentSpec, Sampler, layer_forwards
from .config import TrainConfig
from .graph_cache import export_cached


def loss_total(out_keys, outputs) -> torch.Tensor:
    """The total loss: the sum of the outputs named ``loss_*``."""
    return sum(o.sum() for k, o in zip(out_keys, outputs) if k.startswith("loss_"))


def build_loss(cfg: TrainConfig, actor: nn.Module, critic: nn.Module) -> nn.Module:

    entropy_bonus = cfg.ent_coef > 0
    if cfg.algo == "ppo":
        ClipPPOLoss = objectives.ClipPPOLoss
        loss = ClipPPOLoss(
            actor_network=actor, critic_network=critic, clip_epsilon=cfg.clip_coef, entropy_bonus=entropy_bonus,
            entropy_coeff=cfg.ent_coef, critic_coeff=cfg.critic_coeff, normalize_advantage=cfg.norm_adv,
            loss_critic_type="l2", clip_value=cfg.clip_coef if cfg.clip_vloss else None,
        )
    else:
        kwargs: dict[str, Any] = {}
        if cfg.norm_adv:
            kwargs["normalize_advantage"] = True
        loss = objectives.A2CLoss(
            actor_network=actor, critic_network=critic, entropy_bonus=entropy_bonus, entropy_coeff=cfg.ent_coef,
            critic_coeff=cfg.critic_coeff, loss_critic_type="l2",
            clip_value=cfg.clip_coef if cfg.clip_vloss else None, **kwargs,
        )
    return loss


def loss_networks(loss: nn.Module, actor: nn.Module, critic: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The actor and critic whose parameters the loss optimises (a loss may hold copies)."""
    a = getattr(loss, "actor_network", None)
    c = getattr(loss, "critic_network", None)
    return (a if isinstance(a, nn.Module) else actor), (c if isinstance(c, nn.Module) else critic)


def named_trainable(loss: nn.Module) -> dict[str, nn.Parameter]:
    out: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for name, p in loss.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p
    return out


def loss_inputs(loss: nn.Module, cfg: TrainConfig, spec: AgentSpec | None = None) -> list[str]:
    """The keyword inputs the update feeds the loss (those of ours that it accepts); composite
    actions: ``action_<head>`` per head and the aggregated ``sample_log_prob``."""
    actions = ["action"] if spec is None else spec.action_names
    names = ["observation", *actions, "sample_log_prob", "advantage", "value_target"]
    if cfg.clip_vloss:
        names.append("state_value")
    accepted = getattr(loss, "accepted_keys", None)
    if accepted:
        names = [n for n in names if n in accepted]
    return names


class GaeModule(nn.Module):
    """``(observation, next_observation, next_reward, next_done, next_terminated) ->
    (advantage, value_target)``: the critic on both observations, then ``rlexport.value.GAE``
    (given ``state_value``/``next_state_value``, so it calls no network itself)."""

    IN_KEYS = ("observation", "next_observation", "next_reward", "next_done", "next_terminated")

    def __init__(self, critic: nn.Module, gamma: float, lmbda: float):

        super().__init__()
        self.critic_network = critic  # parameter names match the loss's
        self.estimator = GAE(gamma=gamma, lmbda=lmbda)
        self.in_keys = list(self.IN_KEYS)
        self.out_keys = ["advantage", "value_target"]

    def forward(self, observation, next_observation, next_reward, next_done, next_terminated):
        return self.estimator(
            next_reward=next_reward, next_done=next_done, next_terminated=next_terminated,
            state_value=self.critic_network(observation=observation),
            next_state_value=self.critic_network(observation=next_observation),
        )


def _to_torch(batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def _scalars(tensors) -> list[float]:
    """The mean of each tensor as a Python float (a 0-d tensor: its value), converted in one
    ``tolist`` rather than one ``float()`` per tensor."""
    means = [t.detach() if t.dim() == 0 else t.detach().mean() for t in tensors]
    if len({m.dtype for m in means}) == 1:
        return torch.stack(means).tolist()
    return [float(m) for m in means]


class TorchEngine:
    name = "torch"

    def __init__(self, cfg: TrainConfig, spec: AgentSpec, actor: nn.Module, critic: nn.Module):
        self.cfg, self.spec = cfg, spec
        self.loss = build_loss(cfg, actor, critic)
        self.actor, self.critic = loss_networks(self.loss, actor, critic)
        self.sampler = Sampler(self.actor, spec.kind)
        self._act_layers = layer_forwards(self.actor.module)
        self.gae_module = GaeModule(self.critic, cfg.gamma, cfg.gae_lambda)
        self.params = named_trainable(self.loss)
        # fused: one kernel for all parameters instead of a Python loop over them (~5x less time
        # per step for CleanRL-sized networks); the same update rule
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        self._param_list = list(self.params.values())
        self._checked_signature: tuple | None = None  # input shapes/dtypes the loss last checked
        self.input_names = loss_inputs(self.loss, cfg, spec)
        self.out_keys = [k if isinstance(k, str) else "_".join(k) for k in self.loss.out_keys]

    # acting ------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # inference mode: no autograd bookkeeping (version counters, views) on the per-step path
        with torch.inference_mode():
            a, lp = self.sampler.act(torch.from_numpy(obs), torch.from_numpy(noise), self._act_layers)
        return a.numpy(), lp.numpy()

    def gae(self, rollout: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            adv, vt = self.gae_module(**_to_torch({k: rollout[k] for k in self.gae_module.in_keys}))
        return adv.numpy(), vt.numpy()

    # update --------------------------------------------------------------------------------
    def update(self, mb: Mapping[str, np.ndarray], lr: float) -> dict[str, float]:
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        inputs = _to_torch({k: mb[k] for k in self.input_names})
        # the loss's layout check (metadata only) once per minibatch signature, not every step
        signature = tuple((v.shape, v.dtype) for v in inputs.values())
        if signature == self._checked_signature:
            outs = self.loss.call_layout_checked(**inputs)
        else:
            outs = self.loss(**inputs)
            self._checked_signature = signature
        outs = as_tuple(outs)  # one output: a bare tensor
        total = loss_total(self.out_keys, outs)
        for p in self._param_list:  # zero_grad(set_to_none=True) without the optimizer's profiler hooks
            p.grad = None
        total.backward()
        torch.nn.utils.clip_grad_norm_(self._param_list, self.cfg.max_grad_norm, foreach=True)
        self.optimizer.step()
        return dict(zip((*self.out_keys, "loss"), _scalars((*outs, total))))

    # checkpoints ---------------------------------------------------------------------------
    # Both engines use the train-step graph's names: ``param.<n>``, ``adam.exp_avg.<n>``,
    # ``adam.exp_avg_sq.<n>``, ``adam.step`` (float64), so a checkpoint does not depend on the engine.
    def state(self) -> dict[str, torch.Tensor]:
        out = {f"param.{n}": p.detach().clone() for n, p in self.params.items()}
        step = 0.0
        for n, p in self.params.items():
            st = self.optimizer.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq"):
                out[f"adam.{k}.{n}"] = st[k].detach().clone() if k in st else torch.zeros_like(p)
            if "step" in st:
                step = float(st["step"])
        out["adam.step"] = torch.tensor(step, dtype=torch.float64)
        return out

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
        self.optimizer.state.clear()
        step = float(tensors["adam.step"])
        if step > 0:
            for n, p in self.params.items():
                self.optimizer.state[p] = {
                    "step": torch.tensor(step, dtype=torch.float32),
                    "exp_avg": tensors[f"adam.exp_avg.{n}"].clone().to(p.dtype),
                    "exp_avg_sq": tensors[f"adam.exp_avg_sq.{n}"].clone().to(p.dtype),
                }

    def sync_to_torch(self) -> None:
        pass


# -- ONNX ------------------------------------------------------------------------------------


def export_train_step_graph(loss: nn.Module, example: Mapping[str, np.ndarray], path: Path, cfg: TrainConfig,
                            cache: GraphCache | None = None) -> Path:
    """The train-step graph (loss + gradients + clip + Adam, dynamic batch) with its golden sample
    (from ``loss``'s current parameters, a fresh Adam state), verified in ONNX Runtime by
    ``export_train_step``. The ONNX engine runs it; both engines ship it as the final artifact.
    ``cache``: copied from the graph cache when it holds this graph (the golden sample is then
    the one of the run that exported it)."""

    ex = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in example.items()}
    options = dict(optimizer="adam", hyperparams=train_step_hyperparams(cfg, cfg.learning_rate), golden=True,
                   verify=True, dynamic=True)
    export_cached(cache, "train_step", loss, ex, Path(path), lambda dest: export_train_step(loss, ex, dest, **options),
                  options)
    return Path(path)


def train_step_hyperparams(cfg, lr: float) -> dict[str, float]:
    """The Adam hyper-parameters a run's train-step graph records as defaults (``lr`` <= 0: the config's)."""
    return {"lr": float(lr) if lr > 0 else float(cfg.learning_rate), "eps": float(cfg.adam_eps),
            "betas": (0.9, 0.999), "weight_decay": 0.0, "max_grad_norm": float(cfg.max_grad_norm)}


class WithParams(LiftedTensors):
    """``module(**inputs)`` with the module's parameters as further keyword inputs
    ``param_<name with . as _>`` (:class:`rlexport.export.bake.LiftedTensors` with that prefix and
    no buffers), so that an exported graph takes them as inputs; ``state_names`` maps each to the
    train-step graph's ``param.<name>``."""

    def __init__(self, module: nn.Module):
        super().__init__(module, prefix="param_")
        self.out_keys = list(getattr(module, "out_keys", []))

    @property
    def state_names(self) -> dict[str, str]:
        return {k: f"param.{n}" for k, n in self.names.items()}

    def example_params(self) -> dict[str, torch.Tensor]:
        return self.values()


class _OrtGraph:
    """An ORT session (``rlexport.runtime.onnx.make_session``, one thread) of a static-shape graph
    whose parameter inputs are read from the trainer's state: ``state_names`` maps graph input ->
    state name.

    Everything is bound once through an ORT I/O binding: the parameters per state
    (``bind_state``, after every update the engine runs), the other inputs and every output to
    buffers this object owns. A call copies its inputs into their buffers, runs and returns copies
    of the outputs: no OrtValue, feed dict or output allocation per call (act runs every env
    step). Plain ``run_with_iobinding``, not ``run_session``: the feed's names, shapes and dtypes
    are fixed by construction (checked once, at export; a wrong shape fails in ``np.copyto``)."""

    def __init__(self, path: Path, state_names: Mapping[str, str]):

        self.sess = make_session(path, "cpu", threads=1)
        inputs, outputs = self.sess.get_inputs(), self.sess.get_outputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in outputs]
        self.state_names = {g: s for g, s in state_names.items() if g in self.input_names}
        dynamic = [v.name for v in (*inputs, *outputs) if not all(isinstance(d, int) for d in v.shape)]
        if dynamic:
            raise RuntimeError(f"_OrtGraph: {path} has dynamic shapes ({dynamic}); export it with static shapes")
        self._binding = self.sess.io_binding()
        self._inputs = {i.name: np.zeros(i.shape, NUMPY_DTYPE_OF_ORT_TYPE[i.type]) for i in inputs
                        if i.name not in self.state_names}
        for name, buf in self._inputs.items():
            self._binding.bind_cpu_input(name, buf)
        self._outputs = [np.zeros(o.shape, NUMPY_DTYPE_OF_ORT_TYPE[o.type]) for o in outputs]
        for name, buf in zip(self.output_names, self._outputs):
            self._binding.bind_output(name, "cpu", element_type=buf.dtype, shape=buf.shape, buffer_ptr=buf.ctypes.data)
        self._bound: dict[str, np.ndarray] = {}  # keeps the bound parameter arrays alive

    def bind_state(self, state: Mapping[str, np.ndarray]) -> None:
        self._bound = {g: np.ascontiguousarray(state[s]) for g, s in self.state_names.items()}
        for g, arr in self._bound.items():
            self._binding.bind_cpu_input(g, arr)

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        buffers = self._inputs
        for name, value in inputs.items():
            np.copyto(buffers[name], value)
        self.sess.run_with_iobinding(self._binding)
        return [out.copy() for out in self._outputs]


def export_param_graph(module: nn.Module, example: Mapping[str, np.ndarray], path: Path,
                       cache: GraphCache | None = None) -> WithParams:
    """``module`` with its parameters as inputs, exported by ``rlexport.export.export_onnx`` (static
    shapes; ``X.json`` + golden sample, verified in ONNX Runtime), or copied from ``cache``."""

    wrapper = WithParams(module).eval()
    ex = {**wrapper.example_params(), **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in example.items()}}
    export_cached(cache, Path(path).stem, wrapper, ex, Path(path), lambda dest: export_onnx(wrapper, ex, dest, dynamic=False),
                  {"dynamic": False})
    return wrapper


class OnnxEngine:
    """Acting, GAE and updates in ONNX Runtime only.

    Three graphs in ``RUN/graphs/``, each exported once (with ``X.json`` and a verified golden
    sample) take the parameters as inputs: ``train_step.onnx`` (``param.<loss parameter name>``),
    ``act.onnx`` (sampler) and ``gae.onnx`` (critic on observation and next_observation +
    ``rlexport.value.GAE``), whose ``param_<name>`` inputs map to the train-step state names. The
    parameters live as numpy arrays in the ``OnnxTrainer``'s state and are fed to all three as
    they are. ``cache``: the graph cache the three come from when it holds them
    (``rlexport.train.graph_cache``); ``None`` exports them.
    """

    name = "onnx"

    def __init__(self, cfg: TrainConfig, spec: AgentSpec, actor: nn.Module, critic: nn.Module, graph_dir: Path,
                 example_rollout: Mapping[str, np.ndarray], example_minibatch: Mapping[str, np.ndarray],
                 cache: GraphCache | None = None):

        self.cfg, self.spec = cfg, spec
        self.loss = build_loss(cfg, actor, critic)
        self.actor, self.critic = loss_networks(self.loss, actor, critic)
        self.params = named_trainable(self.loss)
        self.input_names = loss_inputs(self.loss, cfg, spec)
        self.out_keys = [k if isinstance(k, str) else "_".join(k) for k in self.loss.out_keys]
        graph_dir = Path(graph_dir)
        graph_dir.mkdir(parents=True, exist_ok=True)

        # train step: loss + gradients + clipping + Adam, exported once per run (the final
        # artifact is this graph: see artifacts.export_run_artifacts)
        self.train_step_path = export_train_step_graph(
            self.loss, {k: example_minibatch[k] for k in self.input_names}, graph_dir / "train_step.onnx", cfg, cache)
        self.trainer = OnnxTrainer(self.train_step_path, threads=1)
        self.trainer.load_module(self.loss)
        self._train_step = BoundTrainStep(self.trainer, {k: example_minibatch[k] for k in self.input_names})

        # acting graph: the sampler with the actor's parameters as inputs
        sampler = Sampler(self.actor, spec.kind)
        ex_obs = np.ascontiguousarray(example_rollout["observation"][:, 0])
        ex_noise = spec.draw_noise(np.random.default_rng(0), ex_obs.shape[0])
        w = export_param_graph(sampler, {"observation": ex_obs, "noise": ex_noise}, graph_dir / "act.onnx", cache)
        self._act = _OrtGraph(graph_dir / "act.onnx", w.state_names)

        # GAE graph: the critic's parameters as inputs
        gae = GaeModule(self.critic, cfg.gamma, cfg.gae_lambda)
        w = export_param_graph(gae, {k: example_rollout[k] for k in gae.in_keys}, graph_dir / "gae.onnx", cache)
        self._gae = _OrtGraph(graph_dir / "gae.onnx", w.state_names)
        for g in (self._act, self._gae):
            unknown = [s for s in g.state_names.values() if s not in self.trainer.state]
            if unknown:
                raise RuntimeError(f"OnnxEngine: graph inputs {unknown} are not train-step parameters")
        self._bind_state()

    def _bind_state(self) -> None:
        for g in (self._act, self._gae):
            g.bind_state(self.trainer.state)
        self._stale = False

    def act(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._stale:
            self._bind_state()
        a, lp = self._act(observation=obs, noise=noise)
        return a, lp

    def gae(self, rollout: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self._stale:
            self._bind_state()
        adv, vt = self._gae(**{k: rollout[k] for k in GaeModule.IN_KEYS})
        return adv, vt

    def update(self, mb: Mapping[str, np.ndarray], lr: float) -> dict[str, float]:
        self._stale = True
        outs = self._train_step.step(mb, lr=lr)
        res = {k: float(np.mean(outs[k])) for k in self.out_keys if k in outs}
        res["loss"] = float(sum(v for k, v in res.items() if k.startswith("loss_")))
        return res

    def state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(v)) for k, v in self.trainer.state.items()}

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.trainer.load_state_dict({k: tensors[k] for k in self.trainer.state_names})
        self._stale = True
        self.sync_to_torch()

    def sync_to_torch(self) -> None:
        """Copy the trained parameters into the torch modules (for export and evaluation)."""
        self.trainer.export_parameters_to(self.loss)
