"""The fused Triton kernel equals the oracle ``ops.reference``: outputs, log-sum-exps, weights and
gradients (also through the log-sum-exp), on random graphs with isolated queries, duplicate edges,
hubs split across programs, biases, edge features and dropout; its backward is deterministic.

Without CUDA these run under Triton's interpreter on CPU tensors: ``tests/conftest.py`` sets
``TRITON_INTERPRET=1`` before graphattn (and so the kernels) is first imported. By hand:
``TRITON_INTERPRET=1 python -m pytest tests/test_fused.py``. The interpreter is slow (numpy, one
program at a time), so the graphs are small.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("triton")

from graphattn.ops import AttentionGraph, ScoreSpec, fused, reference_attention  # noqa: E402
from graphattn.ops.fused import FusedPlan, dropout_keep, fused_attention, fused_unsupported, plan_fused  # noqa: E402
from graphattn.patterns import Random  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() and not fused.INTERPRETED else "cpu"
if fused_unsupported(DEVICE):
    pytest.skip(f"the fused kernel cannot run here: {fused_unsupported(DEVICE)}", allow_module_level=True)

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def graphs(draw, duplicates: bool = True):
    """Random directed graphs: self-loops, duplicate edges, isolated queries and maybe one hub
    (a query reading every node and a key read by every node), with a small ``segment`` so that
    hubs are split across programs."""
    n = draw(st.integers(1, 10))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    ei = torch.randint(n, (2, draw(st.integers(0, 24))), generator=gen)
    if draw(st.booleans()):
        hub = draw(st.integers(0, n - 1))
        everyone = torch.arange(n)
        ei = torch.cat([ei, torch.stack([everyone, torch.full_like(everyone, hub)]),
                        torch.stack([torch.full_like(everyone, hub), everyone])], dim=1)
    if duplicates and ei.size(1) and draw(st.booleans()):
        ei = torch.cat([ei, ei[:, : draw(st.integers(1, ei.size(1)))]], dim=1)
    if not duplicates:
        ei = ei.unique(dim=1)
    ei = ei[:, torch.randperm(ei.size(1), generator=gen)]
    return n, ei, draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.sampled_from([2, 3, 1024]))


def leaves(n, e, heads, channels, dtype=torch.float64, seed=0, edge_kv=False, value_channels=None):
    """``q, k, v``, a bias table ``[N, N, H]`` (per edge ``table[i, j]``: duplicates share it, as
    the reference's ``bias(q_idx, k_idx)``) and maybe edge features, all requiring gradients."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(DEVICE, dtype).requires_grad_()

    q, k = rand(n, heads, channels), rand(n, heads, channels)
    v = rand(n, heads, value_channels or channels)
    return q, k, v, rand(n, n, heads), (rand(e, heads, channels) if edge_kv else None)


def edge_weights(q, k, lse, ei, scale, bias=None, edge_kv=None):
    """``alpha_ij = exp(s_ij - lse_i)`` per edge, as the dispatcher forms them from ``lse``."""
    src, dst = ei
    keys = k[src] if edge_kv is None else k[src] + edge_kv
    s = scale * (q[dst].to(lse.dtype) * keys.to(lse.dtype)).sum(-1)
    return torch.exp((s if bias is None else s + bias.to(lse.dtype)) - lse[dst])


def run_fused(q, k, v, table, ekv, ei, plan, scale, **kw):
    """``(out, lse, weights)`` of the fused kernel with per-edge biases ``table[i, j]``."""
    bias = None if table is None else table[ei[1], ei[0]]
    out, lse = fused_attention(q, k, v, plan, scale=scale, bias=bias, edge_kv=ekv, **kw)
    return out, lse, edge_weights(q, k, lse, ei, scale, bias, ekv)


def run_reference(q, k, v, table, ekv, ei, n, scale):
    bias = None if table is None else (lambda i, j: table[i, j])
    spec = ScoreSpec(scale=scale, bias=bias, edge_kv=ekv)
    return reference_attention(q, k, v, AttentionGraph.build(ei, n).to(q.device), spec, return_weights=True)


def assert_matches_reference(n, ei, heads, channels, segment, *, with_bias=True, edge_kv=False, ell=True,
                             dtype=torch.float64, atol=1e-12, value_channels=None):
    q, k, v, table, ekv = leaves(n, ei.size(1), heads, channels, dtype, edge_kv=edge_kv, value_channels=value_channels)
    table = table if with_bias else None
    plan = plan_fused(ei, n, segment=segment, ell=ell).to(DEVICE)
    ei = ei.to(DEVICE)
    out, lse, alpha = run_fused(q, k, v, table, ekv, ei, plan, 0.6)
    want, want_alpha = run_reference(q, k, v, table, ekv, ei, n, 0.6)
    torch.testing.assert_close(out, want, atol=atol, rtol=0)
    torch.testing.assert_close(alpha.to(dtype), want_alpha, atol=atol, rtol=0)
    isolated = torch.bincount(ei[1], minlength=n) == 0
    assert torch.equal(out[isolated], torch.zeros_like(out[isolated]))
    assert bool((lse[isolated] == float("-inf")).all()) and bool(torch.isfinite(lse[~isolated]).all())
    probe, probe_alpha = torch.randn_like(want), torch.randn_like(want_alpha)
    inputs = [t for t in (q, k, v, table, ekv) if t is not None]
    got = torch.autograd.grad((out * probe).sum() + (alpha * probe_alpha).sum(), inputs, allow_unused=True)
    ref = torch.autograd.grad((want * probe).sum() + (want_alpha * probe_alpha).sum(), inputs, allow_unused=True)
    for name, g, r in zip("q k v bias edge_kv".split(), got, ref):
        if r is None:
            assert g is None or not g.abs().sum(), name
        else:
            torch.testing.assert_close(g, r, atol=10 * atol, rtol=0, msg=lambda m, name=name: f"d{name}: {m}")


@SETTINGS
@given(graphs(), st.booleans())
def test_outputs_lse_weights_and_gradients_equal_the_reference(case, with_bias):
    n, ei, heads, channels, segment = case
    assert_matches_reference(n, ei, heads, channels, segment, with_bias=with_bias, value_channels=channels + 1)


@SETTINGS
@given(graphs(duplicates=False))
def test_edge_features_on_keys_and_values_equal_the_reference(case):
    n, ei, heads, channels, segment = case
    assert_matches_reference(n, ei, heads, channels, segment, edge_kv=True)


def test_a_huge_degree_hub_is_split_into_pieces_merged_in_order():
    n = 48  # node 0 reads every node and every node reads node 0: 48 edges each way, in pieces of 8
    everyone = torch.arange(n)
    ei = torch.cat([torch.stack([everyone, torch.zeros_like(everyone)]), torch.stack([torch.zeros_like(everyone), everyone]),
                    torch.randint(n, (2, 40), generator=torch.Generator().manual_seed(0))], dim=1)
    plan = plan_fused(ei, n, segment=8)
    assert plan.dst.split_node.tolist()[0] == 0 and plan.src.split_node.tolist()[0] == 0
    assert plan.dst.num_slots >= 6 and plan.src.num_slots >= 6 and plan.dst.buckets[0][2] <= 8
    assert_matches_reference(n, ei, 2, 4, 8, dtype=torch.float32, atol=2e-6)


def test_the_plan_covers_every_edge_once_in_both_orders():
    ei = torch.randint(30, (2, 400), generator=torch.Generator().manual_seed(1))
    plan = plan_fused(ei, 40, segment=7)  # nodes 30..39 are isolated
    graph = AttentionGraph.build(ei, 40)
    for got, want in zip((plan.rowptr, plan.col, plan.perm), graph.csr()):
        assert torch.equal(got.long(), want)
    assert torch.equal(ei[1, plan.t_perm.long()], plan.t_col.long())
    assert bool((ei[0, plan.t_perm.long()].diff() >= 0).all())  # by source
    for tiling, rowptr in ((plan.dst, plan.rowptr), (plan.src, plan.t_rowptr)):
        covered = torch.cat([torch.arange(s, e) for s, e in zip(tiling.start.tolist(), tiling.end.tolist())])
        assert torch.equal(covered.sort().values, torch.arange(ei.size(1)))  # each sorted edge in one item
        lengths = (tiling.end - tiling.start).long()
        assert int(lengths.max()) <= 7 and bool((lengths.diff() <= 0).all())  # longest first
        per_node = torch.bincount(tiling.node.long(), weights=lengths.double(), minlength=40)
        assert torch.equal(per_node.long(), rowptr.diff().long())
        assert int(tiling.slot.max()) + 1 == tiling.num_slots == int(tiling.split_ptr[-1])
    again = FusedPlan.unflatten(*plan.flatten())
    assert again.dst.buckets == plan.dst.buckets and torch.equal(again.t_col, plan.t_col) and again.degree is None


def test_fixed_degree_patterns_use_the_ell_layout():
    n = 24
    ei = AttentionGraph.build(Random(3, seed=2), n).edge_index
    ei = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))]
    plan = plan_fused(ei, n)
    assert plan.degree == 3 and plan.ell.shape == (n, 3)
    # each query's keys, in the order of the graph's CSR (by key; the same order the sparse kernel reads)
    assert torch.equal(plan.ell.long(), torch.stack([ei[0, ei[1] == i].sort().values for i in range(n)]))
    assert plan_fused(ei, n, ell=False).degree is None
    assert plan_fused(torch.cat([ei, ei[:, :1]], 1), n).degree is None
    assert_matches_reference(n, ei, 2, 3, 1024)
    assert_matches_reference(n, ei, 2, 3, 1024, edge_kv=True, atol=1e-12)


def test_float32_equals_the_float64_reference_to_float32_precision():
    ei = torch.randint(20, (2, 90), generator=torch.Generator().manual_seed(3))
    assert_matches_reference(20, ei, 2, 8, 16, dtype=torch.float32, atol=3e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_match_the_float32_answer(dtype):
    n = 16
    ei = torch.randint(n, (2, 60), generator=torch.Generator().manual_seed(4))
    plan = plan_fused(ei, n, segment=8).to(DEVICE)
    ei = ei.to(DEVICE)
    q, k, v, table, ekv = leaves(n, ei.size(1), 2, 8, torch.float32, edge_kv=True)
    half = [t.detach().to(dtype).requires_grad_() for t in (q, k, v, table, ekv)]
    want = run_fused(q, k, v, table, ekv, ei, plan, 0.35)
    got = run_fused(*half, ei, plan, 0.35)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.float16 else {"atol": 6e-2, "rtol": 6e-2}
    for g, w in zip(got[:2], want[:2]):
        torch.testing.assert_close(g.float(), w.float(), **tol)
    probe = torch.randn_like(want[0])
    for g, w in zip(torch.autograd.grad((got[0].float() * probe).sum(), half),
                    torch.autograd.grad((want[0] * probe).sum(), (q, k, v, table, ekv))):
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), w, **tol)


def test_dropout_keeps_the_same_weights_in_every_pass_and_equals_the_masked_reference():
    n, heads, p = 12, 2, 0.4
    ei = torch.randint(n, (2, 50), generator=torch.Generator().manual_seed(5)).unique(dim=1)
    plan = plan_fused(ei, n, segment=4).to(DEVICE)
    ei = ei.to(DEVICE)
    q, k, v, table, ekv = leaves(n, ei.size(1), heads, 3, edge_kv=True)
    inputs = (q, k, v, table, ekv)
    keep = dropout_keep(plan, heads, p, seed=7)
    assert 0.3 < keep.double().mean() < 0.9 and torch.equal(keep, dropout_keep(plan, heads, p, seed=7))
    assert not torch.equal(keep, dropout_keep(plan, heads, p, seed=8))

    def attend(seed):
        out, lse, alpha = run_fused(*inputs, ei, plan, 0.5, dropout=p, training=True, seed=seed)
        return (out, lse, alpha), torch.autograd.grad(out.square().sum() + alpha.sum(), inputs)

    (out, lse, alpha), grads = attend(7)
    (out2, lse2, _), grads2 = attend(7)
    assert torch.equal(out, out2) and torch.equal(lse, lse2) and all(map(torch.equal, grads, grads2))
    assert not torch.equal(attend(8)[0][0], out)
    # the masked reference: alpha from the oracle, messages kept by the same decisions
    _, ref_alpha = run_reference(*inputs, ei, n, 0.5)
    messages = (ref_alpha * keep / (1 - p))[..., None] * (v[ei[0]] + ekv)  # (E, H, C)
    want = torch.zeros_like(out).index_add(0, ei[1], messages)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-12, rtol=0)  # weights are before dropout
    ref_grads = torch.autograd.grad(want.square().sum() + ref_alpha.sum(), inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-11, rtol=0)
    evaluating, _ = fused_attention(q, k, v, plan, scale=0.5, dropout=p, training=False)
    torch.testing.assert_close(evaluating, fused_attention(q, k, v, plan, scale=0.5)[0], atol=0, rtol=0)


def test_two_backward_runs_give_bit_identical_gradients():
    n = 16
    ei = torch.cat([torch.randint(n, (2, 40), generator=torch.Generator().manual_seed(6)),
                    torch.stack([torch.zeros(n, dtype=torch.long), torch.arange(n)])], dim=1)  # key 0 read by all
    plan = plan_fused(ei, n, segment=6).to(DEVICE)
    q, k, v, table, ekv = leaves(n, ei.size(1), 2, 4, torch.float32, edge_kv=True)
    inputs = (q, k, v, table, ekv)
    runs = [torch.autograd.grad(run_fused(*inputs, ei.to(DEVICE), plan, 0.5)[0].sin().sum(), inputs) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_gradcheck_through_outputs_and_lse_with_bias_edge_features_under_dropout():
    n = 6
    ei = torch.tensor([[0, 1, 2, 3, 4, 1, 2, 0], [1, 1, 1, 1, 1, 2, 2, 4]])  # a hub query, isolated 0, 3, 5
    plan = plan_fused(ei, n, segment=2).to(DEVICE)
    q, k, v, _, ekv = leaves(n, ei.size(1), 2, 2, edge_kv=True)
    bias = torch.randn(ei.size(1), 2, dtype=torch.float64, device=DEVICE, requires_grad=True)

    def attend(q, k, v, bias, ekv):
        out, lse = fused_attention(q, k, v, plan, scale=0.8, bias=bias, edge_kv=ekv, dropout=0.5, training=True, seed=3)
        return out, torch.where(torch.isfinite(lse), lse, 0)

    # under dropout (the other formulas are pinned to the reference above); fast mode (random
    # projections of the Jacobian), as the interpreter makes every evaluation slow
    assert torch.autograd.gradcheck(attend, (q, k, v, bias, ekv), fast_mode=True)


def test_a_query_whose_scores_are_all_minus_inf_gets_zeros_and_a_nan_key_reaches_only_its_readers():
    n = 5
    ei = torch.tensor([[0, 1, 2, 3, 4], [1, 1, 2, 3, 3]])
    plan = plan_fused(ei, n).to(DEVICE)
    q, k, v = (torch.randn(n, 1, 2, dtype=torch.float64, device=DEVICE) for _ in range(3))
    bias = torch.tensor([[float("-inf")], [float("-inf")], [0.0], [0.0], [0.0]], dtype=torch.float64, device=DEVICE)
    out, lse = fused_attention(q, k, v, plan, scale=1.0, bias=bias)
    assert not out[1].abs().sum() and lse[1] == float("-inf") and torch.isfinite(out).all()
    k[4] = float("nan")
    out, _ = fused_attention(q, k, v, plan, scale=1.0)
    assert torch.isnan(out[3]).all() and torch.isfinite(out[[0, 1, 2, 4]]).all()


def test_bad_input_is_refused_naming_the_argument(monkeypatch):
    ei = torch.tensor([[0, 1], [1, 0]])
    plan = plan_fused(ei, 2).to(DEVICE)
    q = torch.randn(2, 1, 4, device=DEVICE)
    with pytest.raises(ValueError, match="bias must have shape"):
        fused_attention(q, q, q, plan, scale=1.0, bias=torch.zeros(3, 1, device=DEVICE))
    with pytest.raises(ValueError, match="plan is for 2 nodes"):
        fused_attention(q[:1], q[:1], q[:1], plan, scale=1.0)
    with pytest.raises(TypeError, match="q must be a float tensor"):
        fused_attention(q.long(), q, q, plan, scale=1.0)
    with pytest.raises(ValueError, match="edge_index must hold node ids in"):
        plan_fused(ei, 1)
    with pytest.raises(ValueError, match="C_v = C"):
        fused_attention(q, q, q[..., :2], plan, scale=1.0, edge_kv=torch.zeros(2, 1, 4, device=DEVICE))
    assert fused_unsupported("cpu", torch.int64, channels=512, value_channels=3, edge_kv=True) == [
        *(["CPU tensors run only under Triton's interpreter: set TRITON_INTERPRET=1 in the environment before "
           "graphattn is imported"] if not fused.INTERPRETED else []),
        "dtype torch.int64: the kernels read float16, bfloat16, float32 or float64",
        "512 channels per head: one tile holds at most 256",
        "edge features are added to keys and values, which need equal channels (512 != 3)"]
    monkeypatch.setattr(fused, "INTERPRETED", False)
    assert any("TRITON_INTERPRET=1" in r for r in fused_unsupported("cpu"))
    if DEVICE == "cpu":
        with pytest.raises(ValueError, match="cannot run this: CPU tensors run only under"):
            fused_attention(q, q, q, plan, scale=1.0)


def test_one_custom_op_under_torch_compile_fullgraph():
    n = 6
    ei = torch.randint(n, (2, 14), generator=torch.Generator().manual_seed(8)).to(DEVICE)
    plan = plan_fused(ei, n, segment=4).to(DEVICE)
    q, k, v, table, _ = leaves(n, ei.size(1), 2, 4, torch.float32)

    def layer(q, k, v, table):
        out, lse = fused_attention(q, k, v, plan, scale=0.5, bias=table[ei[1], ei[0]])
        return out.relu().sum() + torch.where(torch.isfinite(lse), lse, 0).sum()

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    want = torch.autograd.grad(layer(q, k, v, table), (q, k, v, table))
    got = torch.autograd.grad(compiled(q, k, v, table), (q, k, v, table))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=0, rtol=0)


@pytest.mark.slow
def test_the_custom_op_passes_torch_library_opcheck():
    n = 7
    ei = torch.randint(n, (2, 20), generator=torch.Generator().manual_seed(9))
    tensors, ints = plan_fused(ei, n, segment=3).to(DEVICE).flatten()
    q, k, v, table, ekv = leaves(n, ei.size(1), 2, 3, edge_kv=True)
    bias = table[ei[1], ei[0]].detach().requires_grad_()
    torch.library.opcheck(torch.ops.graphattn.fused_forward, (q, k, v, bias, ekv, tensors, ints, 0.5, 0.0, None))


@pytest.mark.slow
@pytest.mark.skipif(fused.triton is None or not hasattr(fused.triton, "compile"), reason="needs triton's compiler")
def test_every_kernel_variant_compiles_for_cuda_without_a_gpu():
    """ptxas accepts every kernel for sm_80 and sm_90 (the interpreter does not check what only
    the compiler does: types, layouts, constexpr branches)."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("fused_ptx.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("spec, reason", [
    (dict(score="gat"), "gat scores"), (dict(score="gatv2"), "gatv2 scores"), (dict(score="additive"), "additive scores"),
    (dict(keep=torch.ones(2, 1)), "keep"), (dict(edge_k=torch.ones(2, 1, 4)), "edge_k"),
])
def test_what_the_kernel_does_not_compute_is_refused_never_ignored(spec, reason):
    # TransformerConv's caller-drawn dropout mask (keep) and GAT's score-only edge term (edge_k) must
    # send auto elsewhere on CUDA, not run here without them
    graph = AttentionGraph.build(torch.tensor([[0, 1], [1, 0]]), 2)
    reasons = fused.Fused().unsupported(graph, ScoreSpec(device=DEVICE, shape=(1, 4, 4), **spec))
    assert len(reasons) == 1 and reason in reasons[0]
    assert fused.Fused().unsupported(graph, ScoreSpec(device=DEVICE, shape=(1, 4, 4), edge_kv=torch.ones(2, 1, 4))) == []
