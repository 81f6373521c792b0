"""Calling one kernel object directly, as the dispatcher does but without choosing or containment."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from graphattn import ops
from graphattn.ops import sparse, sparse_gat


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


aten = torch.ops.aten
#: The ops that make the host wait for the device.
SYNCS = {aten._local_scalar_dense, aten.item, aten.nonzero, aten.is_nonzero}
#: graphattn's own custom ops, whose Python bodies the counter walks into (a dispatch mode sees a
#: custom op as one call, so syncs inside it would be invisible otherwise).
BODIES = {op._opoverload: op._init_fn for op in (
    sparse._sparse_attention, sparse._sparse_backward, sparse_gat._gat_scores, sparse_gat._gatv2_scores,
    sparse_gat._gatv2_backward_op, sparse_gat._softmax_spmm, sparse_gat._softmax_spmm_backward_op)}


class SyncCounter(TorchDispatchMode):
    """Counts the calls of :data:`SYNCS`, with the op that made each, inside graphattn's custom ops too."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in SYNCS:
            self.calls.append(str(func))
        if func in BODIES:
            with self:
                return BODIES[func](*args, **kwargs)
        return func(*args, **kwargs)
