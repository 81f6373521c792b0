"""The capability cheatsheet, generated from the kernels themselves.

Every cell comes from a kernel's own :meth:`~graphattn.ops.kernel.Kernel.unsupported` and
:meth:`~graphattn.ops.kernel.Kernel.declines` (what ``auto`` picks), or from running it on a tiny
graph (double backward); nothing is typed by hand. ``python -m graphattn.ops.capabilities``
prints the page that ``docs/reference/capabilities.md`` holds; a test fails when they differ.
"""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import torch
from torch import Tensor

from ..patterns import LSH, Full, Pattern, Stride, Window, bigbird, longformer
from . import fused
from .dispatch import KERNELS, PRIORITY, attention, choose_kernel
from .graph import AttentionGraph
from .routed import route
from .scores import ScoreSpec

__all__ = ["capability_markdown"]

#: The fused kernel's column holds for an installation with triton; this says what else is true.
NOTE = ("`fused` needs triton (`pip install 'graphattn[gpu]'`); on CPU tensors it runs only under Triton's interpreter "
        "(`TRITON_INTERPRET=1` in the environment before graphattn is imported), which is how its tests run")


class _EvenBand(Pattern):
    """A user's pattern known only by its mask (a band of even offsets)."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        d = k_idx - q_idx
        return (d.abs() <= 16) & (d % 2 == 0)

    def __repr__(self) -> str:
        return "a mask-only user pattern"


def _routed(pattern: Pattern, n: int) -> AttentionGraph:
    """The graph a data-dependent pattern builds in one forward, on seeded queries and keys."""
    q, k = torch.randn(2, n, 4, 8, generator=torch.Generator().manual_seed(2))
    return route(q, k, AttentionGraph.build(pattern, n))


def _graphs() -> list[tuple[str, AttentionGraph]]:
    gen = torch.Generator().manual_seed(0)
    return [
        ("`Full()`, n = 1,024", AttentionGraph.build(Full(), 1024)),
        ("`Window(128)`, n = 16,384", AttentionGraph.build(Window(128), 16384)),
        ("`Stride(8)`, n = 4,096", AttentionGraph.build(Stride(8), 4096)),
        ("`longformer(128, [0])`, n = 16,384", AttentionGraph.build(longformer(128, [0]), 16384)),
        ("`bigbird(64, [0], 3)`, n = 16,384", AttentionGraph.build(bigbird(64, [0], 3), 16384)),
        ("a mask-only user pattern, n = 2,048", AttentionGraph.build(_EvenBand(), 2048)),
        ("the graph `LSH(8)` builds in a forward, n = 4,096", _routed(LSH(8), 4096)),
        ("an edge_index, 10,000 nodes, 50,000 edges", AttentionGraph.build(torch.randint(10000, (2, 50000), generator=gen),
                                                                            10000)),
        ("an edge_index, 64 nodes, 2,000 edges", AttentionGraph.build(torch.randint(64, (2, 2000), generator=gen), 64)),
    ]


def _with_triton():
    """The kernels as an installation with triton sees them (the interpreter on for CPU tensors), so
    the page does not depend on what this machine has installed."""
    return mock.patch.multiple(fused, TRITON_AVAILABLE=True, INTERPRETED=True)


def _reasons(kernel: str, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
    return KERNELS[kernel].unsupported(graph, spec)


def _cell(kernel: str, graph: AttentionGraph, spec: ScoreSpec, notes: dict[str, int]) -> str:
    reasons = _reasons(kernel, graph, spec)
    if reasons:
        return f"no ({', '.join(str(notes.setdefault(r, len(notes) + 1)) for r in reasons)})"
    return "**auto**" if choose_kernel(graph, spec).name == kernel else "yes"


def _graph_table(device: str, notes: dict[str, int]) -> list[str]:
    kernels = [k for k in KERNELS if k != "reference"]
    spec = ScoreSpec(scale=0.125, grad=True, device=device, shape=(4, 32, 32))
    rows = [f"| graph | {' | '.join(f'`{k}`' for k in kernels)} |", "| --- |" + " --- |" * len(kernels)]
    for name, graph in _graphs():
        rows.append(f"| {name} | {' | '.join(_cell(k, graph, spec, notes) for k in kernels)} |")
    return rows


def _double_backward(kernel: str, graph: AttentionGraph) -> str:
    """Whether a Hessian-vector product runs through the kernel (tried on a small CPU graph)."""
    q, k, v = (torch.randn(graph.num_nodes, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(i),
                           requires_grad=True) for i in range(3))
    try:
        out = attention(q, k, v, graph, backend=kernel).out
        g, = torch.autograd.grad(out.square().sum(), q, create_graph=True)
        torch.autograd.grad(g.sum(), k)
    except NotImplementedError:
        return "no"
    return "yes"


def _feature_table(notes: dict[str, int]) -> list[str]:
    kernels = [k for k in KERNELS if k != "reference"]
    base = ScoreSpec(scale=0.125, grad=True, device="cuda", shape=(4, 32, 32))
    # each kernel on the first of these graphs it computes at all
    graphs = [AttentionGraph.build(torch.randint(64, (2, 400), generator=torch.Generator().manual_seed(1)), 64),
              AttentionGraph.build(Window(8), 64), AttentionGraph.build(Stride(4), 64), _routed(LSH(4), 64)]
    home = {k: next(g for g in graphs if not KERNELS[k].unsupported(g, base)) for k in kernels}
    features = {
        "score bias (ALiBi, T5, shortest path)": replace(base, bias=lambda i, j: i.new_zeros(*i.shape, 4)),
        "edge features (`edge_dim`, explicit edges only)": replace(base, edge_kv=torch.zeros(400, 4, 32)),
        "additive scores": replace(base, score="additive", att=torch.zeros(4, 32)),
        "attention dropout": replace(base, dropout=0.1, training=True),
        "float16 / bfloat16 (float32 accumulation)": replace(base, dtype=torch.bfloat16),
        "`torch.func` (grad, vmap)": replace(base, transformed=True),
    }
    rows = [f"| feature (CUDA) | {' | '.join(f'`{k}`' for k in kernels)} |", "| --- |" + " --- |" * len(kernels)]
    for name, spec in features.items():
        cells = []
        for k in kernels:
            reasons = _reasons(k, home[k], spec)
            half_native = spec.dtype != torch.bfloat16 or "cuda" in KERNELS[k].half_on
            cells.append("yes" if not reasons and half_native else "yes, on float32 copies" if not reasons else "no")
        rows.append(f"| {name} | {' | '.join(cells)} |")
    rows.append(f"| attention weights returned | {' | '.join('yes' for _ in kernels)} |")
    # tried where a kernel runs on CPU tensors here (flex has no CPU backward; fused refuses by construction)
    tried = [k for k in kernels if k not in ("flex", "fused")]
    rows.append(f"| double backward (Hessian-vector products) | "
                f"{' | '.join(_double_backward(k, home[k]) if k in tried else 'no' for k in kernels)} |")
    return rows


def capability_markdown() -> str:
    """The cheatsheet page, as Markdown."""
    notes: dict[str, int] = {}
    with _with_triton():
        cpu, cuda = _graph_table("cpu", notes), _graph_table("cuda", notes)
        features = _feature_table(notes)
    lines = [
        "# Capability cheatsheet",
        "",
        "Generated from the kernels by `python -m graphattn.ops.capabilities` (a test fails when this page is",
        "stale). **auto**: what `backend=\"auto\"` runs (training, float32, 4 heads of 32 channels); yes: the",
        "kernel runs the call when forced with `backend=`; no (n): it refuses, for reason n below.",
        "",
        f"## Graphs on the CPU (priority: {', '.join(f'`{k.name}`' for k in PRIORITY['cpu'])})",
        "",
        *cpu,
        "",
        f"## Graphs on CUDA (priority: {', '.join(f'`{k.name}`' for k in PRIORITY['cuda'])})",
        "",
        *cuda,
        "",
        "## Features",
        "",
        *features,
        "",
        "Double backward was tried on a small float64 graph on the CPU (`flex` has no CPU backward at all, `fused`",
        "refuses it by name); `reference` computes everything, in O(N^2) memory, for tests. " + NOTE + ".",
        "",
        "## Reasons",
        "",
        *[f"{number}. {reason}" for reason, number in notes.items()],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(capability_markdown(), end="")
