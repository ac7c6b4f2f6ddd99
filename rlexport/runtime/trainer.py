"""``OnnxTrainer``: train with an exported update-step graph in ONNX Runtime, no autograd in Python.

The trainer holds an ORT session of a ``rlexport.export.export_train_step`` artifact and the
training state (parameters, optimizer state, loss state such as KL-PPO's ``beta``) as numpy
arrays. ``step(batch)`` feeds state + hyper-parameters + batch, runs the graph once and keeps the
graph's ``new.*`` outputs as the next state::

    export_train_step(loss, example, "ppo_step.onnx", optimizer="adam",
                      hyperparams={"lr": 3e-4, "max_grad_norm": 0.5})   # rlexport.export
    trainer = OnnxTrainer("ppo_step.onnx")
    for i, batch in enumerate(batches):
        losses = trainer.step(batch, lr=schedule(i))   # {"loss_objective": ..., "grad_norm": ...}
    trainer.export_parameters_to(loss)                 # copy the trained weights back to torch
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlexport import optim as fopt
from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.golden import read_golden
from rlexport.artifact.metadata import check_manifest, read_metadata
from rlexport.artifact.naming import GRAD_NORM, HP_PREFIX, PARAM_PREFIX, TrainStepLayout
from rlexport.artifact.paths import golden_dir_for
from rlexport.inputs import check_keywords
from rlexport.runtime.onnx import NUMPY_DTYPE_OF_ORT_TYPE, make_session


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class OnnxTrainer:
    """Run a train-step artifact in ONNX Runtime and keep its state between steps.

    ``providers``: ONNX Runtime provider names (default CPU). ``threads``: intra-op threads
    (default: ORT's). ``spinning``: let ORT's idle threads busy-wait (default: not when
    ``OMP_WAIT_POLICY=PASSIVE``, which on a small shared machine costs far more than it saves).
    The initial state is the golden sample's ``initial_state`` when the
    artifact has one (the exported module's parameters and a fresh optimizer); otherwise call
    :meth:`load_state_dict` (or :meth:`load_module`) before :meth:`step`.
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] | None = None, *,
                 threads: int | None = None, spinning: bool | None = None, session_options: Any = None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ArtifactError(f"OnnxTrainer: {self.path}: no such file")
        self.meta = read_metadata(self.path)
        if self.meta.get("kind") != "train_step":
            raise ArtifactError(f"OnnxTrainer: {self.path} is not a train-step artifact (kind {self.meta.get('kind')!r})")
        check_manifest(self.path, self.meta)
        self.layout = TrainStepLayout.from_json(self.meta.get("layout"))
        if not isinstance(self.meta.get("state"), dict) or not isinstance(self.meta.get("hyperparams"), dict):
            raise ArtifactError(f"OnnxTrainer: {self.path}: X.json lacks the train step's 'state' and 'hyperparams'")
        self.session = make_session(self.path, list(providers) if providers else "cpu", threads=threads,
                                    spinning=spinning, options=session_options)
        self._in_dtype = {i.name: NUMPY_DTYPE_OF_ORT_TYPE.get(i.type) for i in self.session.get_inputs()}
        self._output_names = [o.name for o in self.session.get_outputs()]
        self._state_map = dict(self.meta["state"])  # input -> output
        self._batch_names = [b for b in self.layout.batch if b not in self.layout.loss_state]
        self._report_names = list(self.layout.out_keys) + [GRAD_NORM]
        self.hyperparams: dict[str, np.ndarray] = {}
        self.set_hyperparams(**{k[len(HP_PREFIX):]: v for k, v in self.meta["hyperparams"].items()})
        self.state: dict[str, np.ndarray] = {}
        self.steps_taken = 0
        gdir = golden_dir_for(self.path)
        if (gdir / "index.json").is_file():
            self.load_state_dict(read_golden(gdir).initial_state)

    # ---------------------------------------------------------------- construction

    def load_module(self, loss: nn.Module, loss_state: Mapping[str, Any] | None = None) -> None:
        """Start from ``loss``'s current parameters with a fresh optimizer state (zeros, step 0).

        Loss state (KL-PPO's ``beta``) comes from ``loss_state``, else the loss's buffer of that
        name, else the current value."""
        named = dict(loss.named_parameters())
        missing = [n for n in self.layout.params if n not in named]
        if missing:
            raise KeyError(f"OnnxTrainer.load_module: the module has no parameters {missing}")
        params = {n: named[n].detach() for n in self.layout.params}
        state = {PARAM_PREFIX + n: p for n, p in params.items()}
        for k, v in fopt.init_state(self.layout.optimizer, params).items():
            state[self.layout.state_input(k)] = v
        buffers = dict(loss.named_buffers())
        for k in self.layout.loss_state:
            if loss_state and k in loss_state:
                state[k] = loss_state[k]
            elif k in buffers:
                state[k] = buffers[k].detach()
            elif k in self.state:
                state[k] = self.state[k]
            else:
                raise KeyError(f"OnnxTrainer.load_module: no value for the loss state {k!r}; pass loss_state=")
        self.load_state_dict(state)

    # ---------------------------------------------------------------- hyper-parameters

    def set_hyperparams(self, **values: Any) -> None:
        """Set hyper-parameters for this and later steps (``lr=``, ``betas=(b1, b2)``, ``hp.lr=``...)."""
        allowed = self.layout.hyperparams
        for key, value in values.items():
            key = key[len(HP_PREFIX):] if key.startswith(HP_PREFIX) else key
            if key == "betas" and "beta1" in allowed:
                b1, b2 = value
                self.set_hyperparams(beta1=b1, beta2=b2)
                continue
            if key not in allowed:
                raise TypeError(
                    f"OnnxTrainer: unknown hyper-parameter {key!r} for {self.layout.optimizer}; accepted: {allowed}"
                    + (" (and 'betas')" if "beta1" in allowed else "")
                )
            dtype = self._in_dtype.get(HP_PREFIX + key) or np.float64
            self.hyperparams[key] = np.asarray(_to_numpy(value), dtype=dtype).reshape(())

    # ---------------------------------------------------------------- stepping

    def step(self, batch: Mapping[str, Any], *, all_outputs: bool = False, _raw: bool = False,
             **hyperparams: Any) -> dict[str, Any]:
        """One update step on ``batch`` (keyword name → tensor/array, any batch size).

        Hyper-parameters given here (``lr=...``) are set for this and later steps, like writing
        ``param_group["lr"]`` in torch. Returns ``{loss out_key: float, ..., "grad_norm": float}``
        (non-scalar outputs as arrays); ``all_outputs=True`` returns every graph output as a
        torch tensor.
        """
        if hyperparams:
            self.set_hyperparams(**hyperparams)
        if not self.state:
            raise RuntimeError("OnnxTrainer.step: no state loaded; call load_state_dict() or use from_module()")
        check_keywords("OnnxTrainer.step", batch, self._batch_names)
        feed: dict[str, np.ndarray] = dict(self.state)
        for key, value in self.hyperparams.items():
            feed[HP_PREFIX + key] = value
        for key in self._batch_names:
            arr = _to_numpy(batch[key])
            want = self._in_dtype.get(key)
            if want is not None and arr.dtype != want:
                if arr.dtype.kind != np.dtype(want).kind and not (arr.dtype.kind in "iu" and np.dtype(want).kind in "iu"):
                    raise TypeError(f"OnnxTrainer.step: input {key!r} has dtype {arr.dtype}; the graph takes {np.dtype(want)}")
                arr = arr.astype(want)
            feed[key] = arr
        results = self.session.run(self._output_names, feed)
        out = dict(zip(self._output_names, results))
        for inp, outp in self._state_map.items():
            self.state[inp] = out[outp]
        self.steps_taken += 1
        if all_outputs or _raw:
            return {k: torch.from_numpy(np.asarray(v)) for k, v in out.items()}
        return {k: (float(out[k]) if np.ndim(out[k]) == 0 else out[k]) for k in self._report_names}

    # ---------------------------------------------------------------- state

    @property
    def state_names(self) -> list[str]:
        return list(self._state_map)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every state input (``param.*``, optimizer state, loss state) and hyper-parameter
        (``hp.*``) by graph name, as torch tensors (copies)."""
        sd = {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}
        sd.update({HP_PREFIX + k: torch.from_numpy(np.array(v)) for k, v in self.hyperparams.items()})
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load state (graph names) and optionally ``hp.*`` entries. ``strict``: every state input
        must be given and no unknown name; shapes must match the current state's."""
        hp = {k: v for k, v in state_dict.items() if k.startswith(HP_PREFIX)}
        st = {k: v for k, v in state_dict.items() if not k.startswith(HP_PREFIX)}
        unknown = [k for k in st if k not in self._state_map]
        missing = [k for k in self._state_map if k not in st]
        if strict and (unknown or missing):
            raise KeyError(f"OnnxTrainer.load_state_dict: missing {missing}, unknown {unknown}")
        new = dict(self.state)
        for k, v in st.items():
            if k not in self._state_map:
                continue
            arr = np.array(_to_numpy(v), dtype=self._in_dtype.get(k))
            if k in self.state and self.state[k].shape != arr.shape:
                raise ValueError(f"OnnxTrainer.load_state_dict: {k!r} has shape {list(arr.shape)}, expected {list(self.state[k].shape)}")
            new[k] = arr
        self.state = new
        if hp:
            self.set_hyperparams(**hp)

    def parameters(self) -> dict[str, torch.Tensor]:
        """The current parameters by module name (``loss.named_parameters()`` names)."""
        return {n: torch.from_numpy(np.array(self.state[PARAM_PREFIX + n])) for n in self.layout.params}

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        """The functional optimizer state (``exp_avg.<name>``..., ``step``)."""
        return {s: torch.from_numpy(np.array(self.state[self.layout.state_input(s)])) for s in self.layout.slots}

    # ---------------------------------------------------------------- back to torch

    def export_parameters_to(self, module: nn.Module, prefix: str = "", strict: bool = True) -> nn.Module:
        """Copy the trained parameters into ``module`` in place and return it.

        ``module`` is the loss that was exported (names match), or a sub-module with
        ``prefix`` its name in the loss (``"actor_network."``). ``strict``: every trainable
        parameter of ``module`` must be found in the artifact.
        """
        params = self.parameters()
        named = dict(module.named_parameters())
        copied, missing = 0, []
        with torch.no_grad():
            for name, p in named.items():
                key = prefix + name
                if key in params:
                    if params[key].shape != p.shape:
                        raise ValueError(f"export_parameters_to: {key!r} has shape {list(params[key].shape)} in the "
                                         f"artifact but {list(p.shape)} in the module")
                    p.copy_(params[key].to(p.dtype))
                    copied += 1
                elif p.requires_grad:
                    missing.append(key)
        if strict and missing:
            raise KeyError(
                f"export_parameters_to: the artifact has no parameters {missing}; its parameters: "
                f"{list(params)} (pass prefix= for a sub-module)"
            )
        if copied == 0:
            raise KeyError(f"export_parameters_to: no parameter of the module matches the artifact's {list(params)}")
        return module

    def to_torch(self, loss_or_modules: nn.Module | Mapping[str, nn.Module]):
        """Copy the parameters back: a module (the loss) or ``{prefix: sub-module}``. Returns it."""
        if isinstance(loss_or_modules, nn.Module):
            return self.export_parameters_to(loss_or_modules)
        for prefix, module in loss_or_modules.items():
            self.export_parameters_to(module, prefix=prefix if not prefix or prefix.endswith(".") else prefix + ".")
        return loss_or_modules

    def to_torch_optimizer(self, loss: nn.Module) -> torch.optim.Optimizer:
        """A ``torch.optim`` optimizer over ``loss``'s parameters carrying the trainer's state and
        hyper-parameters: continue training eagerly exactly where ONNX Runtime stopped (call
        :meth:`export_parameters_to` first for the parameters themselves)."""
        named = dict(loss.named_parameters())
        params = {n: named[n] for n in self.layout.params}
        hp = {k: v.item() for k, v in self.hyperparams.items()}
        opt = fopt.make_torch_optimizer(self.layout.optimizer, list(params.values()), hp)
        fopt.state_to_torch(self.layout.optimizer, opt, params, self.optimizer_state())
        return opt

    def __repr__(self) -> str:
        return (f"OnnxTrainer({self.path!r}, optimizer={self.layout.optimizer}, params={len(self.layout.params)}, "
                f"steps_taken={self.steps_taken})")


class BoundTrainStep:
    """``trainer.step`` for one fixed batch shape with every input and output bound once.

    Two ORT I/O bindings alternate between two sets of state buffers: step ``k`` reads the
    state from one set and writes the next state into the other, so a step copies only the batch
    (and the hyper-parameters) into bound buffers, with no feed dict, no OrtValue and no output
    allocation per call. ``trainer.state`` is kept pointing at the set that holds the current
    state (its arrays are overwritten two steps later: copy what must outlive that), and a state
    loaded into the trainer meanwhile (``load_state_dict``) is copied in before the next step.
    ``step(batch)`` returns ``{loss out_key or grad_norm: array}`` (views of bound buffers,
    valid until the next step). The same graph and numbers as ``trainer.step``."""

    def __init__(self, trainer: OnnxTrainer, example_batch: Mapping[str, Any]):
        if not trainer.state:
            raise RuntimeError("BoundTrainStep: the trainer has no state loaded")
        check_keywords("BoundTrainStep", example_batch, trainer._batch_names)
        self.trainer = trainer
        sess = trainer.session
        first = trainer.session.run(trainer._output_names, {
            **trainer.state, **{HP_PREFIX + k: v for k, v in trainer.hyperparams.items()},
            **{k: np.asarray(_to_numpy(example_batch[k]), dtype=trainer._in_dtype.get(k)) for k in trainer._batch_names}})
        shapes = dict(zip(trainer._output_names, (np.shape(v) for v in first)))
        self._sets = [{k: np.array(v) for k, v in trainer.state.items()}, {k: np.empty_like(v) for k, v in trainer.state.items()}]
        self._batch = {k: np.zeros(np.shape(example_batch[k]), trainer._in_dtype.get(k)) for k in trainer._batch_names}
        self._hp = {k: np.array(v) for k, v in trainer.hyperparams.items()}
        out_dtype = {o.name: NUMPY_DTYPE_OF_ORT_TYPE[o.type] for o in sess.get_outputs()}
        self._report = {k: np.zeros(shapes[k], out_dtype[k]) for k in trainer._report_names}
        self._bindings = []
        for src, dst in ((0, 1), (1, 0)):
            b = sess.io_binding()
            for k, v in (*self._sets[src].items(), *((HP_PREFIX + k, v) for k, v in self._hp.items()), *self._batch.items()):
                b.bind_cpu_input(k, v)
            outputs = {out: self._sets[dst][inp] for inp, out in trainer._state_map.items()}
            outputs.update(self._report)
            for name in trainer._output_names:
                buf = outputs[name]
                b.bind_output(name, "cpu", element_type=buf.dtype, shape=buf.shape, buffer_ptr=buf.ctypes.data)
            self._bindings.append(b)
        self._current = 0
        trainer.state = self._sets[0]

    def step(self, batch: Mapping[str, Any], **hyperparams: Any) -> dict[str, np.ndarray]:
        trainer = self.trainer
        if hyperparams:
            trainer.set_hyperparams(**hyperparams)
        cur = self._sets[self._current]
        if trainer.state is not cur:  # loaded from outside since the last step
            for k, v in trainer.state.items():
                np.copyto(cur[k], v)
            trainer.state = cur
        for k, v in trainer.hyperparams.items():
            np.copyto(self._hp[k], v)
        for k, buf in self._batch.items():
            np.copyto(buf, batch[k])
        trainer.session.run_with_iobinding(self._bindings[self._current])
        self._current ^= 1
        trainer.state = self._sets[self._current]
        trainer.steps_taken += 1
        return self._report
