"""TensorDict adapter: call any rlexport loss the way TorchRL's losses are called.

This is the only rlexport module that imports ``tensordict``.

    >>> out = call_loss(loss, td)          # or simply loss(td)
    >>> out["loss_objective"].backward()

``td`` holds TorchRL's nested keys (``("next", "reward")``); they are flattened to the keyword
names (``next_reward``) and only the keywords the loss accepts are passed (TorchRL ignores the
other entries too). The result is a ``TensorDict`` with batch size ``[]`` holding every entry
TorchRL 0.14.1 writes for the same configuration, in its order (e.g. ``kl_approx`` and
``explained_variance`` for the PPO losses); with ``select_out_keys`` only the selected ones.
As in TorchRL, calling a ``KLPENPPOLoss`` this way updates its ``beta`` buffer.

Value estimators too: ``est(td)`` (or :func:`call_estimator`) writes ``advantage`` and
``value_target`` into ``td`` (and ``state_value``/``("next", "state_value")`` when its value
network computed them) and returns ``td``, as TorchRL's estimators do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from tensordict import TensorDict, TensorDictBase

from rlexport.inputs import flatten_key

__all__ = ["call_loss", "call_estimator", "to_kwargs", "outputs_to_tensordict"]

# Outputs of rlexport losses that TorchRL's TensorDicts do not have.
_RLEXPORT_ONLY = frozenset({"beta_next"})


def to_kwargs(td: TensorDictBase, keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``{flattened key: tensor}`` for every leaf of ``td`` (only ``keys`` when given)."""
    wanted = None if keys is None else set(keys)
    out = {}
    for key, value in td.items(include_nested=True, leaves_only=True):
        name = flatten_key(key)
        if wanted is None or name in wanted:
            out[name] = value
    return out


def outputs_to_tensordict(names: Iterable[str], values: Iterable[torch.Tensor]) -> TensorDict:
    """A batch-size ``[]`` TensorDict from a loss's ``out_keys`` and output tuple."""
    return TensorDict(dict(zip(names, values)), batch_size=[])


def call_loss(loss, td: TensorDictBase | Mapping) -> TensorDict:
    """Run ``loss`` on the entries of ``td`` and return TorchRL's output TensorDict."""
    if not isinstance(td, TensorDictBase):
        td = TensorDict(dict(td), batch_size=[])
    kwargs = to_kwargs(td, [*loss.accepted_keys, *getattr(loss, "input_aliases", {})])
    selected = getattr(loss, "_selected_out_keys", None)
    if selected is not None:
        wanted = list(selected)
    else:
        wanted = [k for k in loss.available_out_keys if k not in _RLEXPORT_ONLY]
    if hasattr(loss, "forward_and_update"):
        names = list(dict.fromkeys(wanted + ["beta_next"]))
        previous = loss._selected_out_keys
        try:
            loss._selected_out_keys = names
            values = loss.forward_and_update(**kwargs)
            if isinstance(values, torch.Tensor):  # one output: returned bare
                values = (values,)
        finally:
            loss._selected_out_keys = previous
        outputs = dict(zip(names, values))
    else:
        outputs = loss.compute_all(**kwargs)
    return TensorDict({k: outputs[k] for k in wanted if k in outputs}, batch_size=[])


def call_estimator(estimator, td: TensorDictBase) -> TensorDictBase:
    """Run a value estimator on the entries of ``td`` (batch ``[*batch, T]``, entries
    ``[*batch, T, 1]``) and write its outputs into ``td`` under the estimator's keys; ``td``."""
    accepted = list(estimator.accepted_keys)
    if estimator.tensor_keys.sample_log_prob == "sample_log_prob" and "sample_log_prob" in accepted:
        accepted.append("action_log_prob")  # TorchRL 0.14.1's name of it (resolved by the estimator)
    kwargs = to_kwargs(td, accepted)
    outputs = estimator.estimate_all(**kwargs)
    keys = estimator.tensor_keys
    value_key = estimator.nested_key("value")
    if estimator.value_network is not None:
        td.set(value_key, outputs[keys.value])
        td.set(("next", *((value_key,) if isinstance(value_key, str) else value_key)), outputs["next_" + keys.value])
    if "shifted_valid" in outputs:  # shifted=True: which steps kept their place (TorchRL)
        td.set("shifted_valid", outputs["shifted_valid"])
    td.set(estimator.nested_key("advantage"), outputs[keys.advantage])
    td.set(estimator.nested_key("value_target"), outputs[keys.value_target])
    return td
