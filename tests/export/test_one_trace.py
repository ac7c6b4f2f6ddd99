"""Gradient graphs translated without the exporter's decomposition re-trace.

``capture_function(..., decompositions=onnx_decompositions())`` decomposes while ``make_fx``
traces; ``to_onnx`` then skips ``run_decompositions`` when every op translates as it is. These
tests pin the private torch internals that path uses (torch 2.13) and check the rewrite of
in-place ops against eager torch and the resulting gradient graph against ``torch.autograd``."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from rlexport.export import export_onnx
from rlexport.export import onnx as onnx_export
from rlexport.export.capture import capture_function, functionalize_single_use, symbolic_inputs
from rlexport.export.onnx import onnx_decompositions, to_onnx, translatable_as_is
from rlexport.export.plan import ExportError


def test_private_exporter_api_is_where_we_use_it():
    # rlexport.export.onnx calls these torch.onnx internals directly: a torch upgrade that moves
    # them must fail here, not fall back silently
    assert torch.__version__.startswith("2.13"), torch.__version__
    from torch.onnx._internal._lazy_import import onnxscript_apis
    from torch.onnx._internal.exporter import _core, _decomp, _fx_passes, _ir_passes

    for owner, name in [(_core, "_exported_program_to_onnx_program"), (_core, "export"),
                        (_fx_passes, "insert_type_promotion_nodes"), (_fx_passes, "remove_assertion_nodes"),
                        (_ir_passes, "rename_inputs"), (_ir_passes, "rename_outputs"),
                        (_decomp, "create_onnx_friendly_decomposition_table"), (onnxscript_apis, "convert_version")]:
        assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} moved"
    table = onnx_decompositions()
    assert torch.ops.aten.smooth_l1_loss.default in table  # no torchlib function: decomposed
    assert torch.ops.aten.mul.Tensor not in table  # translated directly


def _trace(fn, *args):
    return make_fx(fn, tracing_mode="symbolic")(*args)


def _targets(gm):
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def test_inplace_on_a_single_use_intermediate_becomes_out_of_place():
    def fn(x, m):
        return torch.where(x > 0, x, -x).masked_fill_(m, 0.0) * 2

    x, m = torch.randn(5, 3), torch.rand(5, 3) > 0.5
    gm = _trace(fn, x, m)
    assert torch.ops.aten.masked_fill_.Scalar in _targets(gm)
    assert functionalize_single_use(gm) == 1
    assert torch.ops.aten.masked_fill_.Scalar not in _targets(gm)
    assert torch.ops.aten.masked_fill.Scalar in _targets(gm)
    torch.testing.assert_close(gm(x, m), fn(x, m), rtol=0, atol=0)


def test_inplace_read_again_through_its_result_is_rewritten():
    def shared(x, m):  # make_fx reads y after the mutation through the in-place node's result
        y = torch.where(x > 0, x, -x)
        z = y.masked_fill_(m, 0.0)
        return z + y

    x, m = torch.randn(4, 2), torch.rand(4, 2) > 0.5
    gm = _trace(shared, x, m)
    assert functionalize_single_use(gm) == 1
    torch.testing.assert_close(gm(x, m), shared(x, m), rtol=0, atol=0)


def test_inplace_on_an_observed_value_is_left_alone():
    def viewed(x, m):  # a view taken before the mutation sees it: the in-place op must stay
        y = torch.where(x > 0, x, -x)
        v = y[0]
        y.masked_fill_(m, 0.0)
        return v * 2

    def on_input(x, m):  # the mutated tensor is a graph input
        return x.masked_fill_(m, 0.0) * 2

    x, m = torch.randn(4, 2), torch.ones(4, 2, dtype=torch.bool)
    for fn in (viewed, on_input):
        gm = _trace(fn, x.clone(), m)
        assert functionalize_single_use(gm) == 0
        assert torch.ops.aten.masked_fill_.Scalar in _targets(gm)
    gm = _trace(viewed, x, m)
    torch.testing.assert_close(gm(x, m), viewed(x, m), rtol=0, atol=0)
    assert not gm(x, m).any()  # the mask covers everything: the view reads zeros


def test_gradient_graph_skips_the_decomposition_and_matches_autograd():
    torch.manual_seed(0)
    w = torch.randn(3, 4)

    def loss_and_grad(w, x, y):
        def total(w):
            # smooth_l1_loss (decomposed while tracing), clamp (its backward writes masked_fill_)
            return torch.nn.functional.smooth_l1_loss(torch.clamp(x @ w, -1.0, 1.0), y)
        g, v = torch.func.grad_and_value(total)(w)
        return v, g

    x, y = torch.randn(8, 3), torch.randn(8, 4)
    names, dims = ["w", "x", "y"], {"x": {0: "batch"}, "y": {0: "batch"}}
    ep = capture_function(loss_and_grad, names, [w, x, y], dims, "a test loss", decompositions=onnx_decompositions())
    assert translatable_as_is(ep)
    model = to_onnx(ep, names, ["loss", "grad.w"], dims, what="a test loss")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (8, 1, 33):  # other batch sizes than the traced one
        x, y = torch.randn(batch, 3), torch.randn(batch, 4)
        wr = w.clone().requires_grad_(True)
        ref = torch.nn.functional.smooth_l1_loss(torch.clamp(x @ wr, -1.0, 1.0), y)
        (ref_g,) = torch.autograd.grad(ref, wr)
        loss, grad = sess.run(None, {"w": w.numpy(), "x": x.numpy(), "y": y.numpy()})
        np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, ref_g.numpy(), rtol=1e-5, atol=1e-6)


def test_program_with_unregistered_ops_takes_the_full_path():
    def fn(x):  # traced without the table: smooth_l1_loss has no torchlib function
        return (torch.nn.functional.smooth_l1_loss(x, torch.zeros_like(x)),)

    ep = capture_function(fn, ["x"], [torch.randn(4, 2)], {"x": {0: "batch"}}, "f")
    assert not translatable_as_is(ep)
    model = to_onnx(ep, ["x"], ["out"], {"x": {0: "batch"}}, what="f")
    x = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    (out,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    ref = torch.nn.functional.smooth_l1_loss(torch.from_numpy(x), torch.zeros(6, 2))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6)


def test_registry_build_logs_nothing(caplog):
    """Building the ATen -> ONNX registry (also done outside an export, for the decomposition
    table) logs none of torch's per-op "torchvision is not installed" warnings."""
    with caplog.at_level(logging.WARNING):
        onnx_export._torchlib_registry.__wrapped__(18)  # a fresh build, not the process's cached one
    assert "torchvision" not in caplog.text


# ----------------------------------------------------------------------------- forward graphs: one trace


class _Scaled3d(torch.nn.Module):
    """A linear layer on ``[batch, time, F]`` inputs, a plain tensor attribute (a constant, not a
    buffer) and a buffer."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.scale = torch.tensor([2.0, -0.5])
        self.register_buffer("shift", torch.tensor([0.25, 1.0]))

    def forward(self, *, x, y):
        return self.linear(x) * self.scale + self.shift + y


def test_forward_export_is_one_trace_without_torch_export(tmp_path, monkeypatch):
    """``export_onnx`` traces once (no ``torch.export``), keeps ``aten.linear`` whole (one
    ``MatMul`` + ``Add``, not a reshaped ``Gemm``), lifts the tensor attribute and the buffer to
    initializers, and the graph runs at other batch and time sizes."""
    def no_torch_export(*_a, **_k):
        raise AssertionError("torch.export.export was called for an ONNX export")

    monkeypatch.setattr(torch.export, "export", no_torch_export)
    torch.manual_seed(0)
    module = _Scaled3d()
    example = {"x": torch.randn(4, 5, 3), "y": torch.randn(4, 5, 2)}
    path = export_onnx(module, example, tmp_path / "m.onnx", dynamic={"x": {0: "batch", 1: "time"},
                                                                     "y": {0: "batch", 1: "time"}})
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert "MatMul" in ops and "Gemm" not in ops, ops
    assert [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input] == \
        [["batch", "time", 3], ["batch", "time", 2]]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, t in ((1, 7), (6, 2)):
        x, y = torch.randn(b, t, 3), torch.randn(b, t, 2)
        (out,) = sess.run(None, {"x": x.numpy(), "y": y.numpy()})
        np.testing.assert_allclose(out, module(x=x, y=y).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_inputs_sharing_a_label_share_one_symbol():
    a, b, c = torch.randn(4, 4, 3), torch.randn(4, 4, 1), torch.randn(4, 2)  # batch == time: never merged by value
    dims = {"a": {0: "batch", 1: "time"}, "b": {0: "batch", 1: "time"}, "c": {0: "batch"}}
    fa, fb, fc = symbolic_inputs(["a", "b", "c"], [a, b, c], dims)
    batch, time = fa.shape[0].node.expr, fa.shape[1].node.expr
    assert fb.shape[0].node.expr == fc.shape[0].node.expr == batch and fb.shape[1].node.expr == time
    assert batch != time  # two labels, two symbols
    assert fa.shape[2] == 3 and isinstance(fa.shape[2], int) and isinstance(fc.shape[1], int)


def test_a_forward_that_fixes_a_declared_size_is_refused(tmp_path):
    class FixedBatch(torch.nn.Module):
        def forward(self, *, x):
            return x.reshape(8, 3) * 2.0  # works only at batch 8

    with pytest.raises(ExportError, match=r"batch=8 \(input 'x' dim 0\)"):
        export_onnx(FixedBatch(), {"x": torch.randn(8, 3)}, tmp_path / "f.onnx", dynamic={"x": {0: "batch"}})
    assert not (tmp_path / "f.onnx").exists()



class _ObservedInPlace(torch.nn.Module):
    def forward(self, *, x):
        y = x * 2
        first = y[0]  # a view taken before the in-place op sees it: it cannot become out-of-place
        y.mul_(3)
        return first + y


class _Branching(torch.nn.Module):
    def forward(self, *, x):
        return torch.cond(x.sum() > 0, lambda t: t * 2, lambda t: t - 1, (x,))


@pytest.mark.parametrize("module", [_ObservedInPlace(), _Branching()], ids=["observed-in-place", "torch.cond"])
def test_forward_the_one_trace_cannot_hold_goes_through_torch_export(module, tmp_path, monkeypatch):
    """An in-place op another value observes, or a higher-order op, leaves the one-trace graph
    unfit to be a program as it is: the export takes ``torch.export`` (which functionalizes them)
    and still matches eager at other batch sizes."""
    calls = []
    real_export = torch.export.export
    monkeypatch.setattr(torch.export, "export", lambda *a, **k: calls.append(1) or real_export(*a, **k))
    path = export_onnx(module, {"x": torch.randn(4, 3)}, tmp_path / "m.onnx", dynamic={"x": {0: "batch"}})
    assert calls
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in (torch.randn(6, 3), -torch.rand(2, 3)):
        (out,) = sess.run(None, {"x": x.numpy()})
        np.testing.assert_allclose(out, module(x=x).numpy(), rtol=1e-6, atol=1e-6)
