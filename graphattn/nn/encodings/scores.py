"""Score encodings: modules ``encoding(q, k, pos) -> (q, k, bias | None)``.

They act where attention compares a query with a key, so they depend on ``p_i - p_j`` and
live on the edges of the attention graph. ``q, k`` are ``[N, H, C]``; ``pos`` is ``[N]`` (or
``[N, D]`` for image patches) with each node's true position, so truncated / strided patterns
and batches of sequences of different lengths use the right distances. ``bias(q_idx, k_idx)
-> [..., H]`` takes batch-global node ids, broadcasting like a pattern's ``mask``: kernels call
it on dense grids, tiles or edge lists. Each bias does O(1) gathers per index pair (lookup
tables and slopes are prepared once per call), never a Python loop over edges. On 1-D integer
positions ALiBi and the relative bias come as an :class:`~graphattn.ops.OffsetBias`: a table
per offset ``p_j - p_i``, so the tile kernels gather it on offset tiles they cache per graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...checks import MAX_INDEX, check_bool, check_float, check_int, check_tensor
from ...ops import BiasFn, OffsetBias
from ._pos import check_coords, check_heads

__all__ = ["RelativePositionBias", "ALiBi", "RotaryEncoding", "Compose", "t5_bucket", "alibi_slopes"]


def t5_bucket(relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """T5's bucket of ``relative_position = p_j - p_i`` (as in Mesh TensorFlow / HF ``T5Attention``).

    Half the buckets (per direction when ``bidirectional``) hold exact distances ``0 .. nb/2 - 1``;
    the rest are log-spaced up to ``max_distance``; farther distances share the last bucket.
    Without ``bidirectional`` keys after the query (``p_j > p_i``) share bucket 0.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    # float32, as T5 computed them, so pretrained tables index the same buckets.
    ratio = distance.clamp(min=max_exact).float() / max_exact
    large = max_exact + (ratio.log() / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class RelativePositionBias(nn.Module):
    r"""T5's relative position bias: a learned score per head for each log-spaced distance bucket.

    .. math::
        b^h_{ij} = w^h\big[\mathrm{bucket}(p_j - p_i)\big]

    (see :func:`t5_bucket`). With ``D``-dimensional positions (``pos`` ``[N, D]``, ``dims=D``)
    each axis has its own table and the per-axis biases add up:
    ``b^h_ij = sum_a w^h_a[bucket(p_{j,a} - p_{i,a})]``. Fractional positions are rounded.
    Distances beyond ``max_distance`` share one bucket, so a bias table is precomputed per
    offset in ``[-max_distance, max_distance]`` and the bias is one gather per pair.

    Args:
        heads: number of heads ``H``.
        num_buckets: buckets per table (both directions together). (default: ``32``)
        max_distance: distance of the last bucket. (default: ``128``)
        bidirectional: separate buckets for keys before and after the query; ``False``
            for causal attention. (default: ``True``)
        dims: position axes ``D``. (default: ``1``)
    """

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True, dims: int = 1):
        super().__init__()
        self.heads = check_int(heads, "heads")
        self.num_buckets = check_int(num_buckets, "num_buckets", 4 if bidirectional else 2)
        exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
        self.max_distance = check_int(max_distance, "max_distance", exact + 1)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.dims = check_int(dims, "dims")
        self.weight = nn.Parameter(torch.empty(dims, num_buckets, heads))
        offsets = torch.arange(-max_distance, max_distance + 1)
        self.register_buffer("buckets", t5_bucket(offsets, bidirectional, num_buckets, max_distance), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, BiasFn]:
        check_heads(q, self.heads, "RelativePositionBias")
        coords = check_coords(pos, "RelativePositionBias", q.size(0))  # (N, D)
        if coords.size(1) != self.dims:
            raise ValueError(f"RelativePositionBias(dims={self.dims}) needs pos of shape "
                             f"{'[N]' if self.dims == 1 else f'[N, {self.dims}]'}, got {list(pos.shape)}")
        if coords.numel() and float(coords.abs().max()) > MAX_INDEX:  # p_j - p_i must not overflow int64
            raise ValueError(f"RelativePositionBias: pos must lie in [-{MAX_INDEX}, {MAX_INDEX}], "
                             f"got {float(coords.abs().max()):g}")
        coords = (coords.round() if coords.is_floating_point() else coords).long()
        reach = self.max_distance
        per_offset = self.weight[:, self.buckets]  # (D, 2 * reach + 1, H)
        axes = torch.arange(self.dims, device=coords.device)

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            offset = (coords[k_idx] - coords[q_idx]).clamp(-reach, reach) + reach  # (..., D)
            if self.dims == 1:
                return per_offset[0, offset[..., 0]]  # (..., H)
            return per_offset[axes, offset].sum(dim=-2)  # (..., D, H) -> (..., H)

        if self.dims > 1:
            return q, k, bias
        # one axis: per_offset is the offset table itself, so tile kernels can gather from it heads first
        return q, k, OffsetBias(bias, _flat_positions(pos, coords), lambda _: per_offset[0].t(), reach)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.heads}, num_buckets={self.num_buckets}, "
                f"max_distance={self.max_distance}, bidirectional={self.bidirectional})")


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's head slopes: ``2^{-8h/H}`` for ``h = 1..H`` when ``H`` is a power of two; else
    those of the nearest lower power of two, then every other slope of the next one (paper code)."""
    if heads & (heads - 1) == 0:
        return [2 ** (-8 * h / heads) for h in range(1, heads + 1)]
    lower = 2 ** math.floor(math.log2(heads))
    return alibi_slopes(lower) + alibi_slopes(2 * lower)[0::2][: heads - lower]


class ALiBi(nn.Module):
    r"""Attention with linear biases (Press et al., 2022): a fixed penalty growing with distance.

    .. math::
        b^h_{ij} = -m_h \, \lVert p_i - p_j \rVert

    with the paper's geometric slopes ``m_h`` (:func:`alibi_slopes`). The distance is
    symmetric, so non-causal patterns penalise both directions alike; on a causal pattern
    ``|i - j| = i - j`` and this is the paper's bias exactly. For ``D``-dimensional positions
    the distance is Euclidean (2-D ALiBi for image patches). No parameters: the slopes are a
    buffer.

    Args:
        heads: number of heads ``H``.
    """

    def __init__(self, heads: int):
        super().__init__()
        self.heads = check_int(heads, "heads")
        self.register_buffer("slopes", torch.tensor(alibi_slopes(heads)), persistent=False)

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, BiasFn]:
        check_heads(q, self.heads, "ALiBi")
        coords = check_coords(pos, "ALiBi", q.size(0)).to(q.dtype)  # (N, D)
        neg_slopes = -self.slopes.to(q.dtype)  # (H,)
        one_axis = coords.size(1) == 1

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            delta = coords[k_idx] - coords[q_idx]  # (..., D)
            dist = delta[..., 0].abs() if one_axis else torch.linalg.vector_norm(delta, dim=-1)
            return dist[..., None] * neg_slopes  # (..., H)

        def table(reach: int) -> Tensor:  # (H, 2R + 1): -m_h |d| for d = -R .. R, as bias computes it
            dist = torch.arange(-reach, reach + 1, device=neg_slopes.device).abs().to(neg_slopes.dtype)
            return neg_slopes[:, None] * dist

        if not one_axis or pos.is_floating_point():  # Euclidean or fractional distances: no offset table
            return q, k, bias
        return q, k, OffsetBias(bias, _flat_positions(pos, coords), table)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.heads})"


def _flat_positions(pos: Tensor, coords: Tensor) -> Tensor:
    """``[N]`` long positions for an :class:`~graphattn.ops.scores.OffsetBias`: ``pos`` itself when it
    already is one (the graph's own tensor lets kernels cache index tiles on the graph)."""
    return pos if pos.dim() == 1 and pos.dtype == torch.long else coords[:, 0].long()


class RotaryEncoding(nn.Module):
    r"""Rotary position embedding (RoPE, Su et al., 2021) on queries and keys.

    Channel pair ``(2m, 2m+1)`` of each head is rotated by the angle ``p \, \theta_m``,
    ``theta_m = base^{-2m/C}``:

    .. math::
        \begin{pmatrix} q'_{2m} \\ q'_{2m+1} \end{pmatrix} =
        \begin{pmatrix} \cos p_i\theta_m & -\sin p_i\theta_m \\ \sin p_i\theta_m & \cos p_i\theta_m \end{pmatrix}
        \begin{pmatrix} q_{2m} \\ q_{2m+1} \end{pmatrix}

    and likewise ``k_j`` with ``p_j``, so ``q'_i . k'_j`` depends on positions only through
    ``p_i - p_j``; no bias is returned. Pairs are adjacent channels as in the RoFormer paper
    (LLaMA-style "rotate half" pairs ``m`` with ``m + C/2``, a fixed permutation of the
    channels of ``W_q`` and ``W_k``). With ``D``-dimensional positions (``pos`` ``[N, D]``)
    the ``C`` channels are split into ``D`` blocks of ``C / D`` and block ``a`` rotates by
    axis ``a`` with ``theta_m = base^{-2m/(C/D)}`` (axial 2-D RoPE for image patches); ``C``
    must be divisible by ``2 D``.

    Args:
        head_dim: channels per head ``C`` (even).
        base: the wavelength base. (default: ``10000.0``)
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim = check_int(head_dim, "head_dim")
        if head_dim % 2:
            raise ValueError(f"head_dim must be even (channels rotate in pairs), got {head_dim}")
        self.base = check_float(base, "base", above=0.0, below=float("inf"))

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, None]:
        check_tensor(q, "RotaryEncoding: q", kind="float", shape=f"[N, H, {self.head_dim}]")
        check_tensor(k, "RotaryEncoding: k", kind="float", shape=f"[N, H, {self.head_dim}]")
        if q.dim() != 3 or q.size(2) != self.head_dim or k.shape != q.shape:
            raise ValueError(f"RotaryEncoding(head_dim={self.head_dim}): q and k must have shape "
                             f"[N, H, {self.head_dim}], got {list(q.shape)} and {list(k.shape)}")
        coords = check_coords(pos, "RotaryEncoding", q.size(0))  # (N, D)
        n, dims = coords.shape
        if self.head_dim % (2 * dims):
            raise ValueError(f"RotaryEncoding: head_dim={self.head_dim} must be divisible by 2 * D = {2 * dims} "
                             f"for pos with D={dims} axes, got pos of shape {list(pos.shape)}")
        dtype = torch.promote_types(q.dtype, torch.float32)  # angles stay accurate under half precision
        block = self.head_dim // dims
        inv_freq = self.base ** (-torch.arange(0, block, 2, device=q.device, dtype=dtype) / block)  # (C / 2D,)
        angle = (coords.to(dtype)[..., None] * inv_freq).reshape(n, 1, self.head_dim // 2)  # (N, 1, C / 2)
        cos, sin = angle.cos(), angle.sin()
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin), None

    @staticmethod
    def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        pairs = x.unflatten(-1, (-1, 2)).to(cos.dtype)  # (N, H, C / 2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # (N, H, C / 2, 2)
        return out.flatten(-2).to(x.dtype)  # (N, H, C)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.head_dim}, base={self.base:g})"


class Compose(nn.Module):
    """Several score encodings in turn: each rotates ``q, k`` in order and the biases add up.

    ``Compose(RotaryEncoding(C), ALiBi(H))`` gives rotary scores plus linear biases. Every part
    gets the same ``pos``.
    """

    def __init__(self, *encodings: nn.Module):
        super().__init__()
        if not encodings or not all(isinstance(e, nn.Module) for e in encodings):
            raise TypeError("Compose takes one or more score encodings (nn.Module with forward(q, k, pos))")
        self.encodings = nn.ModuleList(encodings)

    def reset_parameters(self) -> None:
        for enc in self.encodings:
            if hasattr(enc, "reset_parameters"):
                enc.reset_parameters()

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, BiasFn | None]:
        biases: list[BiasFn] = []
        for enc in self.encodings:
            q, k, b = enc(q, k, pos)
            if b is not None:
                biases.append(b)
        if len(biases) <= 1:
            return q, k, (biases[0] if biases else None)

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            out = biases[0](q_idx, k_idx)
            for b in biases[1:]:
                out = out + b(q_idx, k_idx)
            return out

        return q, k, bias

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({', '.join(repr(e) for e in self.encodings)})"
