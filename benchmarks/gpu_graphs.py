"""The graph half of the device benchmark (``benchmarks/gpu.py``): the fused Triton kernel against
the ``sparse`` kernel (cuSPARSE SDDMM / SpMM) and PyG's ``TransformerConv`` and ``GATConv``, eager
and ``torch.compile``d, on Barabasi-Albert and stochastic-block-model graphs.

Every attention layer has ``TransformerConv``'s anatomy: q, k, v projections of ``x``, attention
over the in-neighbours, heads concatenated, plus a root weight (``lin_skip``); ``fused`` and
``sparse`` differ only in the kernel (``ops.attention(..., backend=...)`` on one ``AttentionGraph``
built once, each kernel's plan built once too, reported as ``prepare_s``).
``GATConv`` (additive scores, one projection) is the lighter classic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from graphs import sbm  # benchmarks/graphs.py: 10 blocks, 80% of the edges inside one
from torch import Tensor, nn

from graphattn import ops
from graphattn.ops import AttentionGraph
from graphattn.ops.fused import fused_unsupported

HEADS = 4


def barabasi_albert(n: int, m: int, generator: torch.Generator) -> Tensor:
    """``edge_index`` of a preferential-attachment graph, both directions (``2 (n - m) m`` edges).

    Each new node ``i >= m`` sends ``m`` edges; an edge picks a uniform earlier edge and, with
    probability 1/2, its source or its target: an endpoint chosen uniformly among all earlier
    edge endpoints, i.e. with probability proportional to degree (Barabasi-Albert). Targets
    that copy an earlier target are resolved by pointer jumping, so it is vectorised
    (PyG's ``barabasi_albert_graph`` loops in Python, O(n^2) at 1M nodes)."""
    src = torch.arange(m, n).repeat_interleave(m)  # (E,)
    earlier = (src - m) * m  # edges of earlier new nodes
    pick = (torch.rand(src.numel(), generator=generator) * earlier).long()
    first = earlier == 0  # the first new node attaches to the m seed nodes
    take_source = torch.rand(src.numel(), generator=generator) < 0.5
    value = torch.where(first, torch.randint(m, src.shape, generator=generator), src[pick])
    pointer = torch.where(first | take_source, -1, pick)
    while bool((pointer >= 0).any()):  # pointer jumping: value[e] = value[pointer[e]] once that is known
        live = pointer >= 0
        p = pointer[live]
        done = pointer[p] < 0
        idx = live.nonzero().flatten()
        value[idx[done]] = value[p[done]]
        pointer[idx[done]] = -1
        pointer[idx[~done]] = pointer[p[~done]]
    return torch.cat([torch.stack([src, value]), torch.stack([value, src])], dim=1)


def make_graph(kind: str, n: int) -> Tensor:
    """``"ba"``: Barabasi-Albert, m = 5 (10 edges per node, both directions); ``"sbm"``: the
    stochastic block model of ``benchmarks/graphs.py`` with 10 edges per node."""
    if kind == "ba":
        return barabasi_albert(n, 5, torch.Generator().manual_seed(0))
    return sbm(n, 10 * n)


class KernelLayer(nn.Module):
    """``x -> attend(q, k, v) || heads + lin_skip(x)``: TransformerConv's anatomy around a kernel."""

    def __init__(self, dim: int, attend: Callable[[Tensor, Tensor, Tensor], Tensor]):
        super().__init__()
        self.lin_qkv = nn.Linear(dim, 3 * dim)
        self.lin_skip = nn.Linear(dim, dim)
        self.attend = attend

    def forward(self, x: Tensor) -> Tensor:
        n = x.size(0)
        q, k, v = self.lin_qkv(x).view(n, 3, HEADS, -1).unbind(1)  # (N, H, C) each
        return self.attend(q, k, v).reshape(n, -1) + self.lin_skip(x)


def graph_methods(kind: str, n: int, dim: int, dtype: torch.dtype, device: torch.device, compile_backend: str) -> dict:
    """name -> (forward, has backward), with ``backend``, ``prepare_s``, ``edges`` and per-method
    ``unavailable`` reasons; every method reads the same ``x``."""
    from torch_geometric.nn import GATConv, TransformerConv

    torch._dynamo.reset()  # compiled PyG layers start afresh on each graph (else the recompile limit makes them eager)
    torch.manual_seed(0)
    edge_index = make_graph(kind, n).to(device)
    x = torch.randn(n, dim, device=device, dtype=dtype, requires_grad=True)
    channels = dim // HEADS
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    methods, unavailable, prepare = {}, {}, {}

    tic = time.perf_counter()
    graph = AttentionGraph.build(edge_index, n)
    sync()
    built = time.perf_counter() - tic
    for kernel in ("fused", "sparse"):  # the same prepared graph; each kernel's plan built here, once
        reasons = fused_unsupported(device, dtype, heads=HEADS, channels=channels, value_channels=channels) \
            if kernel == "fused" else []
        if reasons:
            unavailable[kernel] = "; ".join(reasons)
            continue
        tic = time.perf_counter()
        graph.plan(ops.KERNELS[kernel])
        sync()
        prepare[kernel] = round(built + time.perf_counter() - tic, 3)
        layer = KernelLayer(dim, lambda q, k, v, kernel=kernel: ops.attention(q, k, v, graph, backend=kernel).out)
        layer = layer.to(device, dtype)
        methods[kernel] = (lambda layer=layer: layer(x), True)

    transformer = TransformerConv(dim, channels, heads=HEADS).to(device, dtype)
    gat = GATConv(dim, channels, heads=HEADS, add_self_loops=False).to(device, dtype)
    compiled_transformer = torch.compile(transformer, backend=compile_backend)
    compiled_gat = torch.compile(gat, backend=compile_backend)
    methods["pyg_transformer"] = (lambda: transformer(x, edge_index), True)
    methods["pyg_transformer_compiled"] = (lambda: compiled_transformer(x, edge_index), True)
    methods["pyg_gat"] = (lambda: gat(x, edge_index), True)
    methods["pyg_gat_compiled"] = (lambda: compiled_gat(x, edge_index), True)
    return {"methods": methods, "unavailable": unavailable, "prepare_s": prepare, "edges": int(edge_index.size(1))}


def summary(rows: list[dict]) -> list[dict]:
    """Per graph, size and dtype: the fused kernel's fwd+bwd speed-up over each other method and
    its peak memory as a fraction of ``TransformerConv``'s (the targets of issue 23)."""
    out = []
    keys = {(r["task"], r["n"], r.get("dtype")) for r in rows if r.get("method") == "fused"}
    for task, n, dtype in sorted(keys, key=str):
        cells = {r["method"]: r for r in rows if (r["task"], r["n"], r.get("dtype")) == (task, n, dtype)
                 and r.get("mode") == "fwd+bwd" and r.get("status") == "ok"}
        if "fused" not in cells:
            continue
        fused = cells["fused"]
        line = {"task": task, "n": n, "dtype": dtype, "fused_ms": fused["median_ms"]}
        for name, cell in cells.items():
            if name != "fused":
                line[f"speedup_vs_{name}"] = round(cell["median_ms"] / fused["median_ms"], 2)
        peak = cells.get("pyg_transformer", {}).get("peak_mib")
        if peak and fused.get("peak_mib"):
            line["memory_vs_pyg_transformer"] = round(fused["peak_mib"] / peak, 3)
        out.append(line)
    return out
