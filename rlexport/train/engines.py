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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .agent import AgentSpec, Sampler
from .config import TrainConfig


def loss_total(out_keys, outputs) -> torch.Tensor:
    """The total loss: the sum of the outputs named ``loss_*``."""
    return sum(o.sum() for k, o in zip(out_keys, outputs) if k.startswith("loss_"))


def build_loss(cfg: TrainConfig, actor: nn.Module, critic: nn.Module) -> nn.Module:
    import rlexport.objectives as objectives

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


def loss_inputs(loss: nn.Module, cfg: TrainConfig) -> list[str]:
    """The keyword inputs the update feeds the loss (those of ours that it accepts)."""
    names = ["observation", "action", "sample_log_prob", "advantage", "value_target"]
    if cfg.clip_vloss:
        names.append("state_value")
    accepted = getattr(loss, "accepted_keys", None)
    if accepted:
        names = [n for n in names if n in accepted]
    return names


class GaeModule(nn.Module):
    """``(observation, next_observation, next_reward, next_done, next_terminated) ->
    (advantage, value_target)`` with rlexport's GAE and the critic as value network."""

    def __init__(self, critic: nn.Module, gamma: float, lmbda: float):
        super().__init__()
        from rlexport.value import GAE

        self.estimator = GAE(gamma=gamma, lmbda=lmbda, value_network=critic)
        self.in_keys = ["observation", "next_observation", "next_reward", "next_done", "next_terminated"]
        self.out_keys = ["advantage", "value_target"]

    def forward(self, observation, next_observation, next_reward, next_done, next_terminated):
        return self.estimator(
            next_reward=next_reward, next_done=next_done, next_terminated=next_terminated,
            observation=observation, next_observation=next_observation,
        )


def _to_torch(batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class TorchEngine:
    name = "torch"

    def __init__(self, cfg: TrainConfig, spec: AgentSpec, actor: nn.Module, critic: nn.Module):
        self.cfg, self.spec = cfg, spec
        self.loss = build_loss(cfg, actor, critic)
        self.actor, self.critic = loss_networks(self.loss, actor, critic)
        self.sampler = Sampler(self.actor, spec.kind)
        self.gae_module = GaeModule(self.critic, cfg.gamma, cfg.gae_lambda)
        self.params = named_trainable(self.loss)
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.learning_rate, eps=cfg.adam_eps)
        self.input_names = loss_inputs(self.loss, cfg)
        self.out_keys = [k if isinstance(k, str) else "_".join(k) for k in self.loss.out_keys]

    # acting ------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            a, lp = self.sampler(torch.from_numpy(obs), torch.from_numpy(noise))
        return a.numpy(), lp.numpy()

    def gae(self, rollout: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            adv, vt = self.gae_module(**_to_torch({k: rollout[k] for k in self.gae_module.in_keys}))
        return adv.numpy(), vt.numpy()

    # update --------------------------------------------------------------------------------
    def update(self, mb: Mapping[str, np.ndarray], lr: float) -> dict[str, float]:
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        outs = self.loss(**_to_torch({k: mb[k] for k in self.input_names}))
        total = loss_total(self.out_keys, outs)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.max_grad_norm)
        self.optimizer.step()
        res = {k: float(o.detach().mean()) for k, o in zip(self.out_keys, outs)}
        res["loss"] = float(total.detach())
        return res

    # checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        out = {f"param.{n}": p.detach().clone() for n, p in self.params.items()}
        for n, p in self.params.items():
            st = self.optimizer.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq"):
                out[f"opt.{n}.{k}"] = st[k].detach().clone() if k in st else torch.zeros_like(p)
            step = st.get("step", torch.tensor(0.0))
            out[f"opt.{n}.step"] = torch.as_tensor(step, dtype=torch.float32).detach().clone().reshape(())
        return out

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
        self.optimizer.state.clear()
        for n, p in self.params.items():
            step = float(tensors[f"opt.{n}.step"])
            if step > 0:
                self.optimizer.state[p] = {
                    "step": torch.tensor(step, dtype=torch.float32),
                    "exp_avg": tensors[f"opt.{n}.exp_avg"].clone(),
                    "exp_avg_sq": tensors[f"opt.{n}.exp_avg_sq"].clone(),
                }


# -- ONNX ------------------------------------------------------------------------------------


class WithParams(nn.Module):
    """``forward(*params, *inputs)``: the module with its parameters as graph inputs."""

    def __init__(self, module: nn.Module, names: list[str]):
        super().__init__()
        self.module = module
        self.names = list(names)

    def forward(self, *args):
        k = len(self.names)
        return torch.func.functional_call(self.module, dict(zip(self.names, args[:k])), tuple(args[k:]))


def export_with_params(module: nn.Module, params: Mapping[str, torch.Tensor], example: Mapping[str, torch.Tensor],
                       out_names: list[str], path: Path) -> None:
    """Export ``module(**example)`` to ONNX with every parameter an input (static shapes)."""
    import logging
    import warnings

    wrapper = WithParams(module, list(params)).eval()
    args = tuple(p.detach() for p in params.values()) + tuple(example.values())
    names = [f"param.{n}" for n in params] + list(example)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch").setLevel(logging.ERROR)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=out_names, dynamo=True,
                              external_data=False, verbose=False)


def ort_session(path: str | Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class _OrtGraph:
    def __init__(self, path: Path, params: Mapping[str, torch.Tensor]):
        self.sess = ort_session(path)
        self.input_names = [i.name for i in self.sess.get_inputs()]
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.params = params

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        feed = {}
        for name in self.input_names:
            if name.startswith("param."):
                feed[name] = self.params[name[len("param."):]].detach().numpy()
            else:
                feed[name] = inputs[name]
        return self.sess.run(None, feed)


class OnnxEngine:
    """Acting, GAE and updates in ONNX Runtime only."""

    name = "onnx"

    def __init__(self, cfg: TrainConfig, spec: AgentSpec, actor: nn.Module, critic: nn.Module, graph_dir: Path,
                 example_rollout: Mapping[str, np.ndarray], example_minibatch: Mapping[str, np.ndarray]):
        from rlexport.export.train_step import export_train_step
        from rlexport.runtime.trainer import OnnxTrainer

        self.cfg, self.spec = cfg, spec
        self.loss = build_loss(cfg, actor, critic)
        self.actor, self.critic = loss_networks(self.loss, actor, critic)
        self.params = named_trainable(self.loss)
        self.input_names = loss_inputs(self.loss, cfg)
        self.out_keys = [k if isinstance(k, str) else "_".join(k) for k in self.loss.out_keys]
        graph_dir = Path(graph_dir)
        graph_dir.mkdir(parents=True, exist_ok=True)

        # acting graph: sampler with actor params as inputs
        sampler = Sampler(self.actor, spec.kind)
        sp = {n: p for n, p in sampler.named_parameters()}
        ex_obs = torch.from_numpy(example_rollout["observation"][:, 0])
        ex_noise = torch.from_numpy(spec.draw_noise(np.random.default_rng(0), ex_obs.shape[0]))
        export_with_params(sampler, sp, {"observation": ex_obs, "noise": ex_noise}, ["action", "sample_log_prob"],
                           graph_dir / "act.onnx")
        self._act = _OrtGraph(graph_dir / "act.onnx", sp)

        # GAE graph: critic params as inputs
        gae = GaeModule(self.critic, cfg.gamma, cfg.gae_lambda)
        gp = {n: p for n, p in gae.named_parameters()}
        ex = {k: torch.from_numpy(example_rollout[k]) for k in gae.in_keys}
        export_with_params(gae, gp, ex, ["advantage", "value_target"], graph_dir / "gae.onnx")
        self._gae = _OrtGraph(graph_dir / "gae.onnx", gp)

        # train step: loss + gradients + clipping + Adam
        example = {k: torch.from_numpy(example_minibatch[k]) for k in self.input_names}
        export_train_step(
            self.loss, example, graph_dir / "train_step.onnx", optimizer="adam",
            **_train_step_kwargs(cfg),
        )
        self.trainer = OnnxTrainer(graph_dir / "train_step.onnx", module=self.loss)

    def act(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, lp = self._act(observation=obs, noise=noise)
        return a, lp

    def gae(self, rollout: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        adv, vt = self._gae(**{k: rollout[k] for k in ("observation", "next_observation", "next_reward", "next_done",
                                                        "next_terminated")})
        return adv, vt

    def update(self, mb: Mapping[str, np.ndarray], lr: float) -> dict[str, float]:
        outs = self.trainer.step({k: mb[k] for k in self.input_names}, lr=lr)
        res = {k: float(np.mean(outs[k])) for k in self.out_keys if k in outs}
        res["loss"] = float(sum(v for k, v in res.items() if k.startswith("loss_")))
        return res

    def state(self) -> dict[str, torch.Tensor]:
        return {f"{k}": v for k, v in self.trainer.state_tensors().items()}

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.trainer.load_state_tensors(tensors)


def _train_step_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    return {"max_grad_norm": cfg.max_grad_norm, "eps": cfg.adam_eps}
