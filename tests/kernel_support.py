"""Calling one kernel object directly, as the dispatcher does but without choosing or containment."""

from __future__ import annotations

from graphattn import ops


def call(kernel: ops.Kernel):
    """``run(q, k, v, graph, spec, return_weights=False) -> (out, alpha | None)`` for ``kernel``;
    the weights come from its log-sum-exp (:func:`graphattn.ops.edge_weights`) unless it returns them."""
    def run(q, k, v, graph, spec, return_weights=False):
        assert not kernel.unsupported(graph, spec), kernel.unsupported(graph, spec)
        res = kernel.forward(q, k, v, graph, spec, graph.plan(kernel), need_weights=return_weights)
        alpha = res.alpha if res.alpha is not None or not return_weights else ops.edge_weights(q, k, graph, spec, res.lse)
        return res.out, alpha
    return run


def interpreted(name: str) -> bool:
    """Whether kernel ``name`` runs here only under Triton's interpreter (numpy underneath, about a
    thousand times slower than the other kernels on CPU)."""
    from graphattn.ops.fused import INTERPRETED

    return name == "fused" and INTERPRETED


#: The backends the broad sweeps (every kernel x many generated cases) run here: all of them but an
#: interpreted one, which tests/test_ops.py (every kernel against the oracle) and tests/test_fused.py
#: (its own generated cases) pin to the reference instead.
SWEPT_BACKENDS = [name for name in ops.BACKENDS if not interpreted(name)]
SWEPT_KERNELS = [name for name in ops.KERNELS if not interpreted(name)]
