"""Validation of a train-step artifact: from the artifact alone, or K steps against eager torch.optim.

``validate_train_step(path)`` replays the golden sample (initial state, then each step's batch
and hyper-parameters, state fed back) in ONNX Runtime and compares every output with the
recorded references and tolerances: the graph, ``X.json`` and ``X.golden/`` are all it needs.
``validate_train_step(path, loss=module)`` also runs ``k`` fresh steps, with batches resampled to
changing sizes and a changing lr, in ONNX Runtime and in eager PyTorch (``loss(**batch)``,
backward, ``clip_grad_norm_``, ``torch.optim``) from the golden sample's initial state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rlexport.artifact.dtypes import parse_dtype
from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.golden import read_golden
from rlexport.artifact.metadata import read_metadata
from rlexport.artifact.naming import GRAD_NORM, HP_PREFIX, NEW_PREFIX, PARAM_PREFIX, TrainStepLayout
from rlexport.artifact.paths import golden_dir_for
from rlexport.artifact.tolerance import check_tolerance, default_parity_bounds
from rlexport.export.plan import resize_example
from rlexport.export.train_step import eager_train_steps
from rlexport.runtime.check import check_against_golden
from rlexport.runtime.load import load_artifact
from rlexport.runtime.trainer import OnnxTrainer

Tensor = torch.Tensor


@dataclass
class TrainStepReport:
    """``validate_train_step``'s result: per-step max abs differences (ORT vs eager)."""

    path: str
    optimizer: str
    dtype: str
    k: int
    batch_sizes: list[int | None]
    atol_params: float
    rtol_outputs: float
    max_abs_param_diff: float
    max_abs_state_diff: float
    max_abs_loss_diff: dict[str, float]
    max_abs_grad_norm_diff: float
    per_step_param_diff: list[float]
    passed: bool
    failures: list[str] = field(default_factory=list)
    reference: str = "eager torch.optim"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [
            f"train step {self.path} ({self.optimizer}, {self.dtype}): {self.k} steps in ONNX Runtime vs {self.reference}"
            f" — {'PASSED' if self.passed else 'FAILED'}",
            f"  batch sizes: {self.batch_sizes}",
            f"  max |param diff| {self.max_abs_param_diff:.3g} (bound {self.atol_params:.3g}); "
            f"max |optimizer state diff| {self.max_abs_state_diff:.3g}; max |grad_norm diff| {self.max_abs_grad_norm_diff:.3g}",
            "  max |loss diff|: " + ", ".join(f"{k} {v:.3g}" for k, v in self.max_abs_loss_diff.items()),
        ]
        lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)


def validate_train_step(
    path: str | os.PathLike,
    k: int = 20,
    *,
    loss: nn.Module | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
    providers: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
) -> TrainStepReport:
    """Validate the train-step artifact ``path`` (see the module docstring).

    Without ``loss``: the golden sample's steps in ONNX Runtime against its references (``k`` is
    not used; the sample's own step count is), with the sample's per-output tolerances unless
    ``atol``/``rtol`` override them — the artifact alone, no Python object loaded.

    With ``loss``: ``k`` steps in ONNX Runtime and in eager PyTorch (same dtype) from the golden
    sample's initial state; batches are the golden batches resampled to changing sizes
    (``batch_sizes``, cycled), hyper-parameters the golden cases' (cycled, so lr changes). ``atol``
    bounds the max abs parameter difference over all steps; ``rtol`` the loss and grad-norm
    differences (relative to max(1, |value|)); defaults by dtype (``default_parity_bounds``).
    Below float64, with default bounds, each output's bound is at least the conditioning-aware
    ``atol`` the golden sample records for it (largest over its steps).
    """
    artifact = load_artifact(path)
    meta = artifact.meta
    if meta.get("kind") != "train_step":
        raise ArtifactError(f"{path}: not a train-step artifact (kind {meta.get('kind')!r})")
    layout = TrainStepLayout.from_json(meta.get("layout"))
    sample = read_golden(golden_dir_for(path))
    if sample.kind != "train_step":
        raise ArtifactError(f"{sample.path}: golden sample of kind {sample.kind!r}, not a train step's")
    dtype = parse_dtype(meta.get("dtype"), ("float32", "float64"), option="X.json dtype")
    if loss is None:
        return _golden_report(path, layout, sample, meta, dtype, atol, rtol, providers)
    if not isinstance(loss, nn.Module):
        raise TypeError(f"validate_train_step: loss must be the eager loss module, got {type(loss).__name__}")
    d_atol, d_rtol = default_parity_bounds(dtype)
    explicit_atol, explicit_rtol = atol, rtol
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    check_tolerance(rtol, atol, "validate_train_step")

    axes = {n: {int(a): lbl for a, lbl in v.items()} for n, v in meta.get("dynamic_axes", {}).items()}
    batch_axes = {n: {a: lbl for a, lbl in v.items() if lbl == "batch"} for n, v in axes.items()}
    gen = torch.Generator().manual_seed(seed)
    plain_names = [b for b in layout.batch if b not in layout.loss_state]
    steps = []
    sizes_used: list[int | None] = []
    base = max(sample.cases, key=lambda c: _batch_size(c.inputs, batch_axes) or 0)  # the richest batch to draw rows from
    for i in range(k):
        case = sample.cases[i % len(sample.cases)]
        batch = {n: torch.from_numpy(np.array(base.inputs[n])) for n in plain_names}
        size = None
        if batch_axes and batch_sizes:
            size = int(batch_sizes[i % len(batch_sizes)])
        elif batch_axes:
            size = 2 + (7 * i + 3) % 29
        if size is not None:
            batch = resize_example(batch, batch_axes, {"batch": size}, seed=int(torch.randint(0, 2**31 - 1, (), generator=gen)))
        hp = {n[len(HP_PREFIX):]: torch.from_numpy(np.array(case.inputs[n])) for n in case.inputs if n.startswith(HP_PREFIX)}
        steps.append((batch, hp))
        sizes_used.append(size)

    initial = {n: torch.from_numpy(np.array(v)) for n, v in sample.initial_state.items()}
    ref = eager_train_steps(loss, layout, initial, steps, dtype=dtype)
    recorded: dict[str, float] = {}  # output -> the golden sample's per-output atol (largest over its steps)
    if explicit_atol is None and explicit_rtol is None:
        for case in sample.cases:
            for name in case.outputs:
                recorded[name] = max(recorded.get(name, 0.0), sample.tolerance(case, name)[1])

    trainer = OnnxTrainer(path, providers=providers)
    trainer.load_state_dict(initial)
    failures: list[str] = []
    per_step, loss_diff, state_diff, norm_diff = [], {k_: 0.0 for k_ in layout.out_keys}, 0.0, 0.0
    for i, ((batch, hp), want) in enumerate(zip(steps, ref)):
        got = trainer.step(batch, _raw=True, **hp)
        pd = 0.0
        for n in layout.params:
            name = NEW_PREFIX + PARAM_PREFIX + n
            d = _maxdiff(got[name], want[name])
            pd = max(pd, d)
            bound = max(atol, recorded.get(name, 0.0))
            if not d <= bound:
                failures.append(f"step {i}: parameter {n} differs by {d:.3g} (> {bound:.3g})")
        per_step.append(pd)
        for s in layout.slots:
            name = NEW_PREFIX + layout.state_input(s)
            state_diff = max(state_diff, _maxdiff(got[name], want[name]))
        for k_ in layout.out_keys:
            d = _maxdiff(got[k_], want[k_])
            loss_diff[k_] = max(loss_diff[k_], d)
            scale = max(1.0, float(np.max(np.abs(want[k_].double().numpy()))) if want[k_].numel() else 1.0)
            bound = max(rtol * scale, recorded.get(k_, 0.0))
            if not d <= bound:
                failures.append(f"step {i}: {k_} differs by {d:.3g} (> {bound:.3g})")
        nd = _maxdiff(got[GRAD_NORM], want[GRAD_NORM])
        norm_diff = max(norm_diff, nd)
        bound = max(rtol * max(1.0, float(want[GRAD_NORM])), recorded.get(GRAD_NORM, 0.0))
        if not nd <= bound:
            failures.append(f"step {i}: grad_norm differs by {nd:.3g} (> {bound:.3g})")
    return TrainStepReport(
        path=os.fspath(path), optimizer=layout.optimizer, dtype=meta["dtype"], k=k, batch_sizes=sizes_used,
        atol_params=atol, rtol_outputs=rtol, max_abs_param_diff=max(per_step, default=0.0),
        max_abs_state_diff=state_diff, max_abs_loss_diff=loss_diff, max_abs_grad_norm_diff=norm_diff,
        per_step_param_diff=per_step, passed=not failures, failures=failures,
    )


def _batch_size(inputs, batch_axes) -> int | None:
    for name, ax in batch_axes.items():
        for a in ax:
            if name in inputs:
                return int(np.shape(inputs[name])[a])
    return None


def _golden_report(path, layout: TrainStepLayout, sample, meta, dtype, atol, rtol, providers) -> TrainStepReport:
    """The golden sample replayed in ONNX Runtime (``check_against_golden``) as a TrainStepReport."""
    backend = "onnx-cuda" if providers and "CUDAExecutionProvider" in providers else "onnx-cpu"
    report = check_against_golden(path, [backend], rtol=rtol, atol=atol, sample=sample)
    worst = {(r.output): r.max_abs for r in report.rows}
    params = [NEW_PREFIX + PARAM_PREFIX + n for n in layout.params]
    slots = [NEW_PREFIX + layout.state_input(s) for s in layout.slots]
    d_rtol, d_atol = sample.rtol, sample.atol
    failures = [f"{r.backend} {r.output} (case {r.case}): " + (r.error or f"max abs err {r.max_abs:.3g} > rtol {r.rtol:g} / atol {r.atol:g}")
                for r in report.failures]
    failures += [f"{b}: skipped ({why})" for b, why in report.skipped.items()]
    return TrainStepReport(
        path=os.fspath(path), optimizer=layout.optimizer, dtype=meta["dtype"], k=len(sample.cases),
        batch_sizes=[_case_batch(c.inputs, meta) for c in sample.cases],
        atol_params=d_atol if atol is None else atol, rtol_outputs=d_rtol if rtol is None else rtol,
        max_abs_param_diff=max((worst.get(n, 0.0) for n in params), default=0.0),
        max_abs_state_diff=max((worst.get(n, 0.0) for n in slots), default=0.0),
        max_abs_loss_diff={k: worst.get(k, 0.0) for k in layout.out_keys},
        max_abs_grad_norm_diff=worst.get(GRAD_NORM, 0.0),
        per_step_param_diff=[], passed=report.passed and not report.skipped, failures=failures,
        reference="its golden sample",
    )


def _case_batch(inputs, meta) -> int | None:
    axes = {n: {int(a): lbl for a, lbl in v.items()} for n, v in meta.get("dynamic_axes", {}).items()}
    return _batch_size(inputs, {n: {a: lbl for a, lbl in v.items() if lbl == "batch"} for n, v in axes.items()})


def _maxdiff(a, b) -> float:
    a = np.asarray(a.detach().numpy() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().numpy() if isinstance(b, Tensor) else b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    d = np.abs(a - b)
    return float(np.nanmax(d)) if not np.isnan(d).all() else math.inf
