"""Linformer: low-rank attention, every query attending to a few learned summaries of its sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import check_bool, check_int
from ..ops import AttentionGraph, ScoreSpec
from ..ops.masked import explicit, sdpa
from .operator import AttentionOperator

__all__ = ["Linformer"]


class Linformer(AttentionOperator):
    r"""Low-rank attention (Wang et al., 2020): keys and values compressed along each sequence to ``rank`` rows.

    For a query ``i`` of sequence ``s`` with nodes ``p = 0 .. L_s - 1``, per head:

    .. math::
        \tilde k_{s,r} = \sum_{p < L_s} E_{rp}\, k_{s,p}, \qquad
        \tilde v_{s,r} = \sum_{p < L_s} F_{rp}\, v_{s,p}, \qquad
        o_i = \sum_{r} \operatorname{softmax}_r\Big(\frac{q_i \cdot \tilde k_{s,r}}{\sqrt{C}}\Big)\, \tilde v_{s,r}

    In the graph view: a bipartite graph from ``rank`` summary nodes per sequence to its queries,
    each summary a learned mixture of all the sequence's nodes (``E``, ``F`` of shape
    ``[rank, max_length]``, shared by the heads, as Linformer's headwise sharing). The summaries
    of sequence ``s`` are the nodes ``s * rank + r`` of the returned weights' ``edge_index[0]``.

    Variable lengths: sequence ``s`` mixes with the first ``L_s`` columns of ``E`` and ``F``
    (what zero-padding every sequence to ``max_length`` computes); a summary whose row of ``E``
    and ``F`` is zero on those columns mixes nothing and is no node. So ``E = F = I`` with
    ``rank = max_length`` is ``Full()`` on every sequence, of any length.

    Args:
        rank: summaries per sequence ``k``.
        max_length: the longest sequence (virtual nodes included) the layer will see.
        share_kv: one matrix ``E = F`` for keys and values. (default: ``False``)
    """

    def __init__(self, rank: int, max_length: int, *, share_kv: bool = False):
        super().__init__()
        self.rank, self.max_length = check_int(rank, "rank"), check_int(max_length, "max_length")
        self.share_kv = check_bool(share_kv, "share_kv")
        self.key_mix = nn.Parameter(torch.empty(rank, max_length))
        self.value_mix = None if share_kv else nn.Parameter(torch.empty(rank, max_length))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mix in (self.key_mix, self.value_mix):
            if mix is not None:
                nn.init.xavier_normal_(mix)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, *, dropout: float = 0.0,
                return_weights: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        num, length, used = self.sequences(graph)
        if length > self.max_length:
            raise ValueError(f"a sequence has {length} nodes but Linformer(max_length={self.max_length}) mixes at "
                             f"most {self.max_length}")
        e = self.key_mix[:, :length].to(q.dtype)
        f = e if self.value_mix is None else self.value_mix[:, :length].to(q.dtype)
        k_sum = torch.einsum("rl,blhc->bhrc", e, self.pad(k, graph, length))  # (B, H, rank, C)
        v_sum = torch.einsum("rl,blhc->bhrc", f, self.pad(v, graph, length))
        exists = ((e != 0) | (f != 0))[None] & used[:, None, :]  # (B, rank, L): who mixes whom
        mask = exists.any(dim=-1)[:, None, None, :]  # (B, 1, 1, rank): summaries that are nodes
        qp = self.pad(q, graph, length).transpose(1, 2)  # (B, H, L, C)
        scale = q.size(-1) ** -0.5
        if not (return_weights or dropout > 0):
            return self.unpad(sdpa(qp, k_sum, v_sum, mask, scale).transpose(1, 2), graph), None
        out, lse = explicit(qp, k_sum, v_sum, mask, ScoreSpec(scale=scale, dropout=dropout, training=dropout > 0))
        out = self.unpad(out.transpose(1, 2), graph)  # (N, H, C)
        if not return_weights:
            return out, None
        scores = torch.matmul(qp, k_sum.transpose(-1, -2)) * scale  # (B, H, L, rank)
        alpha = torch.exp(scores - torch.where(torch.isfinite(lse), lse, 0.0)[..., None]).masked_fill(~mask, 0.0)
        alpha = self.unpad(alpha.permute(0, 2, 3, 1), graph)  # (N, rank, H)
        batch = graph.layout.batch
        keep = mask[:, 0, 0].index_select(0, batch)  # (N, rank)
        src = batch[:, None] * self.rank + torch.arange(self.rank, device=q.device)
        dst = torch.arange(q.size(0), device=q.device)[:, None].expand_as(src)
        return out, (torch.stack([src[keep], dst[keep]]), alpha[keep])

    def extra_repr(self) -> str:
        return f"rank={self.rank}, max_length={self.max_length}" + (", share_kv=True" if self.share_kv else "")
