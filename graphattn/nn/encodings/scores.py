"""Score encodings: relative bias, ALiBi, rotary, and their composition.

They act where attention compares a query with a key, so they depend on ``p_i - p_j`` and
live on the edges of the attention graph. ``q, k`` are ``[N, H, C]``; ``pos`` is ``[N]`` (or
``[N, D]`` for image patches) with each node's true position, so truncated / strided patterns
and batches of sequences of different lengths use the right distances. ``bias(q_idx, k_idx)
-> [..., H]`` takes batch-global node ids, broadcasting like a pattern's ``mask``: kernels call
it on dense grids, tiles or edge lists. Each bias does O(1) gathers per index pair, never a
Python loop over edges. Positions and distances stay integer or float32 arithmetic whatever
the model's dtype (a distance of two positions past 256 would round in bfloat16); biases are
float32 (float64 for float64 positions) and the kernels cast them to the scores' dtype. On 1-D
integer positions ALiBi and the relative bias come as an :class:`~graphattn.ops.OffsetBias`: a
table per offset ``p_j - p_i``, so the tile kernels gather it on offset tiles they keep per
graph. The protocol (positions once per graph, tables once per forward) is
:class:`~graphattn.nn.encodings.base.ScoreEncoding`'s.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ...checks import MAX_INDEX, check_allocation, check_bool, check_float, check_int, check_tensor
from ...ops import BiasFn, OffsetBias, Plan
from ...ops.kernel import memoized
from ._pos import check_coords, check_heads
from .base import Prepared, ScoreEncoding

__all__ = ["RelativePositionBias", "ALiBi", "RotaryEncoding", "Compose", "t5_bucket", "alibi_slopes"]


@dataclass(frozen=True)
class Coords(Plan):
    """Checked positions: ``coords [N, D]`` (long for integer positions, else float32 / float64)
    and, for one integer axis, ``flat [N]`` long (``pos`` itself when it already is one, so the
    kernels recognise the graph's own positions). ``memo`` keeps derived tables (rotary angles)."""

    coords: Tensor
    flat: Tensor | None
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def _coords(pos: Tensor, owner: str, dims: int | None = None) -> Coords:
    """:class:`Coords` of ``pos`` ``[N]`` or ``[N, D]``: finite, within ``MAX_INDEX`` (so ``p_j - p_i``
    never overflows int64), integer where they are integers, float32 at least otherwise."""
    coords = check_coords(pos, owner)  # (N, D), finite
    if dims is not None and coords.size(1) != dims:
        raise ValueError(f"{owner}(dims={dims}) needs pos of shape {'[N]' if dims == 1 else f'[N, {dims}]'}, "
                         f"got {list(pos.shape)}")
    if coords.numel() and float(coords.abs().max()) > MAX_INDEX:
        raise ValueError(f"{owner}: pos must lie in [-{MAX_INDEX}, {MAX_INDEX}], got {float(coords.abs().max()):g}")
    if coords.is_floating_point():
        coords = coords.to(torch.promote_types(coords.dtype, torch.float32))
    else:
        coords = coords.long()
    flat = None
    if coords.size(1) == 1 and not coords.is_floating_point():
        flat = pos if pos.dim() == 1 and pos.dtype == torch.long else coords[:, 0]
    return Coords(coords, flat)


def t5_bucket(relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """T5's bucket of ``relative_position = p_j - p_i`` (as in Mesh TensorFlow / HF ``T5Attention``).

    Half the buckets (per direction when ``bidirectional``) hold exact distances ``0 .. nb/2 - 1``;
    the rest are log-spaced up to ``max_distance``; farther distances share the last bucket.
    Without ``bidirectional`` keys after the query (``p_j > p_i``) share bucket 0.
    """
    check_tensor(relative_position, "relative_position", kind="int", shape="[...]")
    check_bool(bidirectional, "bidirectional")
    check_int(num_buckets, "num_buckets", 4 if bidirectional else 2, MAX_INDEX)
    exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    check_int(max_distance, "max_distance", exact + 1, MAX_INDEX)
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


class RelativePositionBias(ScoreEncoding[Coords]):
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
        self.num_buckets = check_int(num_buckets, "num_buckets", 4 if bidirectional else 2, MAX_INDEX)
        exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
        self.max_distance = check_int(max_distance, "max_distance", exact + 1, MAX_INDEX)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.dims = check_int(dims, "dims")
        check_allocation((2 * max_distance + 1) * (8 + 4 * dims * heads), f"RelativePositionBias(max_distance="
                         f"{max_distance})'s table per offset", "cpu", "use a smaller max_distance (the last bucket "
                         "holds every farther offset anyway)")
        self.weight = nn.Parameter(torch.empty(dims, num_buckets, heads))
        offsets = torch.arange(-max_distance, max_distance + 1)
        self.register_buffer("buckets", t5_bucket(offsets, bidirectional, num_buckets, max_distance), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)

    def position_key(self) -> Hashable:
        return (self.dims,)

    def positions(self, pos: Tensor) -> Coords:
        """Rounded integer positions (T5's offsets are integers)."""
        state = _coords(pos, "RelativePositionBias", self.dims)
        if not state.coords.is_floating_point():
            return state
        coords = state.coords.round().long()
        return Coords(coords, coords[:, 0] if self.dims == 1 else None)

    def bind(self, state: Coords) -> Prepared:
        reach, coords = self.max_distance, state.coords
        per_offset = self.weight[:, self.buckets]  # (D, 2 * reach + 1, H): this forward's table, shared by the layers
        axes = torch.arange(self.dims, device=coords.device)

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            offset = (coords[k_idx] - coords[q_idx]).clamp(-reach, reach) + reach  # (..., D)
            if self.dims == 1:
                return per_offset[0, offset[..., 0]]  # (..., H)
            return per_offset[axes, offset].sum(dim=-2)  # (..., D, H) -> (..., H)

        # one axis: per_offset is the offset table itself, so tile kernels can gather from it heads first
        out = bias if self.dims > 1 else OffsetBias(bias, state.flat, lambda _: per_offset[0].t(), reach)

        def encode(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, BiasFn]:
            check_heads(q, self.heads, "RelativePositionBias")
            return q, k, out

        return encode

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.heads}, num_buckets={self.num_buckets}, "
                f"max_distance={self.max_distance}, bidirectional={self.bidirectional})")


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's head slopes: ``2^{-8h/H}`` for ``h = 1..H`` when ``H`` is a power of two; else
    those of the nearest lower power of two, then every other slope of the next one (paper code)."""
    check_int(heads, "heads", 1, 1 << 20)
    if heads & (heads - 1) == 0:
        return [2 ** (-8 * h / heads) for h in range(1, heads + 1)]
    lower = 2 ** math.floor(math.log2(heads))
    return alibi_slopes(lower) + alibi_slopes(2 * lower)[0::2][: heads - lower]


class ALiBi(ScoreEncoding[Coords]):
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

    def positions(self, pos: Tensor) -> Coords:
        return _coords(pos, "ALiBi")

    def bind(self, state: Coords) -> Prepared:
        coords = state.coords  # (N, D): long, or float32 / float64
        dtype = coords.dtype if coords.is_floating_point() else torch.float32
        neg_slopes = -self.slopes.to(dtype)  # (H,)
        one_axis = coords.size(1) == 1

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            delta = coords[k_idx] - coords[q_idx]  # (..., D), exact integers or float32
            dist = delta[..., 0].abs().to(dtype) if one_axis else torch.linalg.vector_norm(delta.to(dtype), dim=-1)
            return dist[..., None] * neg_slopes  # (..., H)

        def table(reach: int) -> Tensor:  # (H, 2R + 1): -m_h |d| for d = -R .. R, as bias computes it
            dist = torch.arange(-reach, reach + 1, device=neg_slopes.device).abs().to(dtype)
            return neg_slopes[:, None] * dist

        # Euclidean or fractional distances: no offset table
        out = bias if state.flat is None else OffsetBias(bias, state.flat, table)

        def encode(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, BiasFn]:
            check_heads(q, self.heads, "ALiBi")
            return q, k, out

        return encode

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.heads})"


class RotaryEncoding(ScoreEncoding[Coords]):
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

    def position_key(self) -> Hashable:
        return (self.head_dim, self.base)

    def positions(self, pos: Tensor) -> Coords:
        state = _coords(pos, "RotaryEncoding")
        dims = state.coords.size(1)
        if self.head_dim % (2 * dims):
            raise ValueError(f"RotaryEncoding: head_dim={self.head_dim} must be divisible by 2 * D = {2 * dims} "
                             f"for pos with D={dims} axes, got pos of shape {list(pos.shape)}")
        return state

    def _angles(self, state: Coords, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(cos, sin) [N, 1, C / 2]`` in ``dtype`` (float32 at least), kept on the position state."""
        def compute() -> tuple[Tensor, Tensor]:
            n, dims = state.coords.shape
            block = self.head_dim // dims
            inv_freq = self.base ** (-torch.arange(0, block, 2, device=state.coords.device, dtype=dtype) / block)
            angle = (state.coords.to(dtype)[..., None] * inv_freq).reshape(n, 1, self.head_dim // 2)  # (N, 1, C / 2)
            return angle.cos(), angle.sin()
        return memoized(state.memo, dtype, compute)

    def bind(self, state: Coords) -> Prepared:
        def encode(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, None]:
            check_tensor(q, "RotaryEncoding: q", kind="float", shape=f"[N, H, {self.head_dim}]")
            check_tensor(k, "RotaryEncoding: k", kind="float", shape=f"[N, H, {self.head_dim}]")
            if q.dim() != 3 or q.size(2) != self.head_dim or k.shape != q.shape:
                raise ValueError(f"RotaryEncoding(head_dim={self.head_dim}): q and k must have shape "
                                 f"[N, H, {self.head_dim}], got {list(q.shape)} and {list(k.shape)}")
            # angles stay accurate under half precision
            cos, sin = self._angles(state, torch.promote_types(q.dtype, torch.float32))
            return self._rotate(q, cos, sin), self._rotate(k, cos, sin), None

        return encode

    @staticmethod
    def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        pairs = x.unflatten(-1, (-1, 2)).to(cos.dtype)  # (N, H, C / 2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # (N, H, C / 2, 2)
        return out.flatten(-2).to(x.dtype)  # (N, H, C)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.head_dim}, base={self.base:g})"


class Compose(ScoreEncoding["_States"]):
    """Several score encodings in turn: each rotates ``q, k`` in order and the biases add up.

    ``Compose(RotaryEncoding(C), ALiBi(H))`` gives rotary scores plus linear biases. Every part
    gets the same ``pos``.
    """

    def __init__(self, *encodings: ScoreEncoding):
        super().__init__()
        if not encodings or not all(isinstance(e, ScoreEncoding) for e in encodings):
            got = ", ".join(type(e).__name__ for e in encodings) or "nothing"
            raise TypeError(f"Compose takes one or more score encodings (ScoreEncoding modules), got {got}")
        self.encodings = nn.ModuleList(encodings)

    def reset_parameters(self) -> None:
        for enc in self.encodings:
            if hasattr(enc, "reset_parameters"):
                enc.reset_parameters()

    def position_key(self) -> Hashable:
        return tuple((type(e).__name__, e.position_key()) for e in self.encodings)

    def positions(self, pos: Tensor) -> _States:
        return _States(tuple(enc.positions(pos) for enc in self.encodings))

    def bind(self, state: _States) -> Prepared:
        parts = [enc.bind(s) for enc, s in zip(self.encodings, state.parts)]

        def encode(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, BiasFn | None]:
            biases: list[BiasFn] = []
            for part in parts:
                q, k, b = part(q, k)
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

        return encode

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({', '.join(repr(e) for e in self.encodings)})"


class _States(NamedTuple):
    """The position states of a :class:`Compose`'s parts, moved together."""

    parts: tuple

    def to(self, device: torch.device) -> _States:
        return _States(tuple(p.to(device) for p in self.parts))
