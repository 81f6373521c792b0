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
