"""vmap: in_dims/out_dims, nesting, chunking, kwargs, and the error cases (messages repeat the call)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

from loom.func import vmap

from ._checks import assert_trees_close, check_vmap

torch.manual_seed(0)


def test_pointwise_with_broadcasting_and_unbatched_args() -> None:
    x, y = torch.randn(4, 3), torch.randn(3)
    check_vmap(lambda a, b: (a * b).sin() + b.exp(), [x, y], in_dims=(0, None))
    check_vmap(lambda a, b: a + b, [torch.randn(4), torch.randn(2, 3)], in_dims=(0, None))
    check_vmap(lambda a, b: torch.where(a > 0, a, b), [torch.randn(5, 3), torch.randn(5, 2, 3)])


def test_zero_dim_batched_tensor_keeps_type_promotion() -> None:
    x32 = torch.randn(3)
    s64 = torch.randn(4, dtype=torch.float64)
    out = check_vmap(lambda s: x32 * s, [s64])
    assert out.dtype == torch.float32


def test_in_dims_negative_none_and_nested_prefix() -> None:
    x = torch.randn(3, 5)
    tree = {"a": torch.randn(5, 2), "b": torch.randn(2, 5)}
    ours = vmap(lambda t, z: t["a"] * t["b"] + z.sum(), in_dims=({"a": 0, "b": -1}, -1))(tree, x)
    theirs = tf.vmap(lambda t, z: t["a"] * t["b"] + z.sum(), in_dims=({"a": 0, "b": -1}, -1))(tree, x)
    assert_trees_close(ours, theirs)


def test_out_dims_and_non_tensor_outputs() -> None:
    x = torch.randn(4, 3)
    ours = vmap(lambda a: (a.sum(0), a * 2, "tag"), out_dims=(0, 1, None))(x)
    assert ours[2] == "tag"
    assert_trees_close(ours[:2], (x.sum(1), (x * 2).T))
    unbatched = vmap(lambda a: torch.ones(2), out_dims=1)(x)
    assert_trees_close(unbatched, torch.ones(2, 4))


def test_kwargs_are_not_batched() -> None:
    x = torch.randn(4, 3)
    scale = torch.randn(3)
    assert_trees_close(vmap(lambda a, *, s: a * s)(x, s=scale), x * scale)


def test_nested_vmap_matches_torch_func() -> None:
    x, y = torch.randn(2, 3, 4), torch.randn(3, 4, 5)
    ours = vmap(vmap(torch.mm, in_dims=(0, None)), in_dims=(None, 0))(x, y)
    theirs = tf.vmap(tf.vmap(torch.mm, in_dims=(0, None)), in_dims=(None, 0))(x, y)
    assert_trees_close(ours, theirs)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 10])
def test_chunk_size(chunk_size: int) -> None:
    x = torch.randn(7, 3)
    w = torch.randn(3, 2)
    assert_trees_close(vmap(lambda a: (a @ w).tanh(), chunk_size=chunk_size)(x), (x @ w).tanh())


def test_reductions_views_matmul_cat() -> None:
    x = torch.randn(4, 3, 5)
    check_vmap(lambda a: a.sum(), [x])
    check_vmap(lambda a: a.mean(-1, keepdim=True), [x])
    check_vmap(lambda a: a.amax(dim=(0, 1)), [x])
    check_vmap(lambda a: a.var(0), [x])
    check_vmap(lambda a: a.max(dim=1), [x])
    check_vmap(lambda a: a.argmax(), [x])
    check_vmap(lambda a: F.softmax(a, -1), [x])
    check_vmap(lambda a: F.log_softmax(a, 0), [x])
    check_vmap(lambda a: a.cumsum(1), [x])
    check_vmap(lambda a: a.reshape(15).view(5, 3).T.unsqueeze(0).squeeze(), [x])
    check_vmap(lambda a: a.permute(1, 0)[1:, 0].flatten(), [x])
    check_vmap(lambda a: a.transpose(0, 1).expand(2, 5, 3, 3).contiguous(), [x.clone()[:, :, :3]])
    check_vmap(lambda a: torch.cat([a, torch.ones(3, 2)], dim=1), [x], in_dims=0)
    check_vmap(lambda a, b: torch.stack([a, b], dim=-1), [x, torch.randn(3, 5)], in_dims=(0, None))
    check_vmap(lambda a: a.split(2, dim=-1), [x])
    check_vmap(lambda a: a.unbind(1), [x])
    check_vmap(lambda a, b: a @ b, [x, torch.randn(4, 5, 2)])
    check_vmap(lambda a, b: a @ b, [x, torch.randn(5, 2)], in_dims=(0, None))
    check_vmap(lambda a, b: a @ b, [torch.randn(2, 3), torch.randn(4, 3)], in_dims=(None, 0))
    check_vmap(torch.dot, [torch.randn(4, 3), torch.randn(4, 3)])
    check_vmap(torch.mv, [torch.randn(3, 5), torch.randn(4, 5)], in_dims=(None, 0))
    check_vmap(
        lambda a, b: torch.addmm(b, a, a.T, beta=0.5, alpha=2),
        [torch.randn(4, 3, 2), torch.randn(3)],
        in_dims=(0, None),
    )
    check_vmap(lambda a: a.sum(0), [torch.randn(4)])  # logically 0-dim
    check_vmap(lambda a: F.softmax(a, 0), [torch.randn(4)])


def test_linear_tanh_jacobian_style_function() -> None:
    w, b = torch.randn(16, 16), torch.randn(16)
    check_vmap(lambda x: F.linear(x, w, b).tanh(), [torch.randn(8, 16)])


def test_inplace_on_batched_tensor() -> None:
    def f(a: torch.Tensor) -> torch.Tensor:
        a = a.clone()
        a.mul_(2).add_(1)
        a[0] = 0.0
        return a

    check_vmap(f, [torch.randn(4, 3)])


# ------------------------------------------------------------------------------------------------ errors


def f2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def test_error_no_inputs() -> None:
    with pytest.raises(ValueError, match=r"vmap\(<lambda>\)\(\): got no inputs"):
        vmap(lambda: torch.ones(1))()


def test_error_no_batched_tensor() -> None:
    with pytest.raises(
        ValueError, match=r"vmap\(f2, in_dims=None\)\(Tensor\[3\], Tensor\[3\]\).*at least one"
    ):
        vmap(f2, in_dims=None)(torch.ones(3), torch.ones(3))


def test_error_mismatched_batch_sizes() -> None:
    with pytest.raises(ValueError, match=r"vmap\(f2\)\(Tensor\[2\], Tensor\[3\]\).*same size.*\[2, 3\]"):
        vmap(f2)(torch.ones(2), torch.ones(3))


def test_error_in_dims_wrong_length_and_type() -> None:
    with pytest.raises(ValueError, match=r"got 2 inputs but in_dims has 3 entries"):
        vmap(f2, in_dims=(0, 0, 0))(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"in_dims must be an int or"):
        vmap(f2, in_dims="0")
    with pytest.raises(ValueError, match=r"in_dim=2 for an input that is a Tensor of dimensionality 1"):
        vmap(f2, in_dims=(2, 0))(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"in_dim=0 for an input of type int"):
        vmap(f2)(torch.ones(2), 3)


def test_error_item_and_control_flow() -> None:
    with pytest.raises(
        RuntimeError, match=r"vmap\(<lambda>\)\(Tensor\[2, 3\]\): vmap does not support .item"
    ):
        vmap(lambda a: a.sum().item())(torch.ones(2, 3))

    def branchy(a: torch.Tensor) -> torch.Tensor:
        return a if a.sum() > 0 else -a

    with pytest.raises(RuntimeError, match=r"vmap\(branchy\).*data-dependent"):
        vmap(branchy)(torch.ones(2, 3))


def test_error_inplace_write_of_batched_into_unbatched() -> None:
    buf = torch.zeros(3)

    def f(a: torch.Tensor) -> torch.Tensor:
        return buf.add_(a)

    with pytest.raises(RuntimeError, match=r"vmap\(f\)\(Tensor\[2, 3\]\): in-place operation .*add_"):
        vmap(f)(torch.ones(2, 3))
    assert torch.equal(buf, torch.zeros(3))


def test_error_out_dims() -> None:
    with pytest.raises(ValueError, match=r"must only return Tensors"):
        vmap(lambda a: (a, 3))(torch.ones(2))
    with pytest.raises(ValueError, match=r"out_dims is None for an output that is batched"):
        vmap(lambda a: a, out_dims=None)(torch.ones(2))
    with pytest.raises(ValueError, match=r"vmap: chunk_size must be None or a positive int, got 0"):
        vmap(f2, chunk_size=0)


def test_fallback_is_an_error_in_tests_and_a_warning_otherwise() -> None:
    import loom.func as lf

    def needs_fallback(a: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._cdist_forward.default(a, a, 2.0, None)

    x = torch.randn(3, 4, 2)
    with pytest.raises(NotImplementedError, match=r"no batching rule for aten._cdist_forward"):
        vmap(needs_fallback)(x)
    previous = lf.set_vmap_fallback("warn")
    try:
        with pytest.warns(UserWarning, match=r"slow per-example loop"):
            ours = vmap(needs_fallback)(x)
    finally:
        lf.set_vmap_fallback(previous)
    assert_trees_close(ours, torch.stack([needs_fallback(e) for e in x]))


def test_inplace_view_ops_change_the_logical_shape() -> None:
    def f(a: torch.Tensor) -> torch.Tensor:
        b = a.clone()
        b.unsqueeze_(0)
        b.t_()
        b.squeeze_(1)
        b.transpose_(0, 0)
        return b * 2

    check_vmap(f, [torch.randn(4, 3)])
    check_vmap(lambda v, m: v @ m, [torch.randn(5, 3), torch.randn(3, 2)], in_dims=(0, None))


def test_modules_under_vmap_of_grad_match_torch_func() -> None:
    import loom.func as lf

    torch.manual_seed(0)
    cases = [
        (torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True), torch.randn(3, 5, 16)),
        (torch.nn.LSTM(8, 16, batch_first=True), torch.randn(3, 5, 8)),
    ]
    previous = lf.set_vmap_fallback("silent")  # flash-attention and mkldnn RNN backward have no rule yet
    try:
        for model, x in cases:
            params = {k: v.detach() for k, v in model.named_parameters()}

            def loss(lib: object, model: torch.nn.Module = model) -> object:
                def f(p: dict, xb: torch.Tensor) -> torch.Tensor:
                    out = lib.functional_call(model, p, (xb.unsqueeze(0),))
                    return (out[0] if isinstance(out, tuple) else out).pow(2).mean()

                return f

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torch.func's own fallback warning for LSTM
                theirs = tf.vmap(tf.grad(loss(tf)), in_dims=(None, 0))(params, x)
            ours = lf.vmap(lf.grad(loss(lf)), in_dims=(None, 0))(params, x)
            assert_trees_close(ours, theirs, rtol=1e-4, atol=1e-6)
    finally:
        lf.set_vmap_fallback(previous)


def test_conjugate_views_are_materialized() -> None:
    x = torch.randn(3, 4, dtype=torch.complex128)
    check_vmap(lambda a: torch.conj(a) * 2, [x])
    check_vmap(lambda a: a * 2, [x.conj()])
