"""How gradient and train-step graphs name their inputs and outputs (pure naming, no tensors).

- ``param.<name>``: a trainable parameter (``loss.named_parameters()`` name);
- ``buffer.<name>``: a buffer or frozen parameter (gradient graphs; train steps bake them in);
- ``grad.<name>``: the gradient of the total loss (sum of the ``loss_*`` outputs) w.r.t. it;
- ``<optimizer>.<slot>.<name>`` and ``<optimizer>.step``: optimizer state (``adam.exp_avg.w``);
- ``hp.<name>``: a hyper-parameter (float64 0-d; ``hp.nesterov`` bool);
- ``new.<input name>``: the updated value of a state input;
- ``grad_norm``: the pre-clip total gradient norm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rlexport import optim as fopt
from rlexport.artifact.errors import ArtifactError

PARAM_PREFIX = "param."
BUFFER_PREFIX = "buffer."
GRAD_PREFIX = "grad."
NEW_PREFIX = "new."
HP_PREFIX = "hp."
GRAD_NORM = "grad_norm"

NAMING = (
    "inputs: param.<name> (trainable parameters, loss.named_parameters() names), "
    "<optimizer>.<slot>.<name> and <optimizer>.step (optimizer state), hp.<name> (hyper-parameters, "
    "float64 0-d; hp.nesterov bool), buffer.<name> (gradient graphs only; train steps bake buffers in), "
    "then the batch keywords; outputs: new.<input name> for every updated state input, the loss's "
    "out_keys, grad_norm (pre-clip total norm), grad.<name> (gradient graphs)"
)


@dataclass
class TrainStepLayout:
    """The names of a train-step graph and what each one is."""

    optimizer: str
    params: list[str]  # module names of the trainable parameters
    batch: list[str]  # batch keywords (loss-state inputs included, in their keyword position)
    out_keys: list[str]  # the loss's outputs
    loss_state: dict[str, str] = field(default_factory=dict)  # batch keyword -> loss output

    @property
    def slots(self) -> list[str]:
        """Functional optimizer state keys (``exp_avg.<name>``..., ``step``)."""
        return [f"{s}.{n}" for s in fopt.OPTIMIZER_SLOTS[self.optimizer] for n in self.params] + ["step"]

    @property
    def hyperparams(self) -> list[str]:
        return list(fopt.OPTIMIZER_DEFAULTS[self.optimizer])

    def param_input(self, name: str) -> str:
        return PARAM_PREFIX + name

    def state_input(self, slot: str) -> str:
        return f"{self.optimizer}.{slot}"

    @property
    def input_names(self) -> list[str]:
        return (
            [PARAM_PREFIX + n for n in self.params]
            + [self.state_input(s) for s in self.slots]
            + [HP_PREFIX + h for h in self.hyperparams]
            + list(self.batch)
        )

    @property
    def output_names(self) -> list[str]:
        return (
            [NEW_PREFIX + PARAM_PREFIX + n for n in self.params]
            + [NEW_PREFIX + self.state_input(s) for s in self.slots]
            + list(self.out_keys)
            + [GRAD_NORM]
        )

    @property
    def state(self) -> dict[str, str]:
        """State input -> the output that feeds it at the next step."""
        out = {PARAM_PREFIX + n: NEW_PREFIX + PARAM_PREFIX + n for n in self.params}
        out.update({self.state_input(s): NEW_PREFIX + self.state_input(s) for s in self.slots})
        out.update(self.loss_state)
        return out

    @property
    def step_inputs(self) -> list[str]:
        """Inputs given at every step: hyper-parameters and the batch (without loss state)."""
        return [HP_PREFIX + h for h in self.hyperparams] + [b for b in self.batch if b not in self.loss_state]

    def to_json(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "params": self.params, "batch": self.batch,
                "out_keys": self.out_keys, "loss_state": self.loss_state}

    @classmethod
    def from_json(cls, d: Any) -> "TrainStepLayout":
        """The layout recorded in ``X.json``; ``ArtifactError`` when it is malformed."""
        try:
            layout = cls(str(d["optimizer"]), [str(p) for p in d["params"]], [str(b) for b in d["batch"]],
                         [str(k) for k in d["out_keys"]], {str(k): str(v) for k, v in d.get("loss_state", {}).items()})
        except (KeyError, TypeError, AttributeError) as err:
            raise ArtifactError(f"train-step layout in X.json is malformed ({type(err).__name__}: {err})") from None
        if layout.optimizer not in fopt.OPTIMIZERS:
            raise ArtifactError(f"train-step layout in X.json names optimizer {layout.optimizer!r}; known: {list(fopt.OPTIMIZERS)}")
        return layout


def detect_loss_state(batch: Sequence[str], out_keys: Sequence[str]) -> dict[str, str]:
    """Batch keywords ``k`` for which the loss returns ``k_next`` (KL-PPO's ``beta``)."""
    return {k: k + "_next" for k in batch if k + "_next" in out_keys}


def split_hyperparams(layout_or_optimizer, values: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
    """Hyper-parameters by short name (``lr``) or graph name (``hp.lr``) → graph tensors,
    torch.optim defaults for the rest. ``betas=(b1, b2)`` is accepted."""
    optimizer = layout_or_optimizer.optimizer if isinstance(layout_or_optimizer, TrainStepLayout) else layout_or_optimizer
    clean = {}
    for k, v in (values or {}).items():
        k = k[len(HP_PREFIX):] if k.startswith(HP_PREFIX) else k
        clean[k] = v
    return fopt.default_hyperparams(optimizer, **clean)


def check_unique(names: Sequence[str], owner: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{owner}: graph name {n!r} is used twice; rename the batch keyword or loss output")
        seen.add(n)
