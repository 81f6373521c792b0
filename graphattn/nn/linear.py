"""Kernelised (linear) attention: ``Full()`` in O(N) through a feature map, never forming an edge."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_bool, check_choice, check_int
from ..ops import AttentionGraph
from .operator import AttentionOperator

__all__ = ["LinearAttention", "Elementwise", "PositiveRandomFeatures", "performer", "FEATURE_MAPS"]

#: Up to this many features over all heads (``H m``), the sums run as one block-diagonal product.
_BLOCK_DIAGONAL = 128

#: The elementwise feature maps by name: ``elu(x) + 1`` (Katharopoulos et al., 2020), ``relu``,
#: ``sigmoid`` (Polynormer's global attention).
FEATURE_MAPS = {"elu": lambda x: F.elu(x) + 1, "relu": F.relu, "sigmoid": torch.sigmoid}


class Elementwise(nn.Module):
    r""":math:`\phi(x) = f(x)` entry by entry, ``f`` one of :data:`FEATURE_MAPS`."""

    def __init__(self, name: str = "elu"):
        super().__init__()
        self.name = check_choice(name, "feature_map", tuple(FEATURE_MAPS))

    def forward(self, x: Tensor, used: Tensor, query: bool) -> Tensor:
        """``x [B, L, H, C] -> [B, L, H, C]``; rows past a sequence's end (``~used [B, L]``) zero."""
        features = FEATURE_MAPS[self.name](x)
        return features if used.size(0) == 1 else features * used[:, :, None, None]  # one sequence: all used

    def extra_repr(self) -> str:
        return repr(self.name)


def _haar(channels: int, gen: torch.Generator) -> Tensor:
    """A uniformly random orthogonal ``[C, C]`` matrix: ``Q`` of a Gaussian's QR with the signs of
    ``R``'s diagonal taken out (LAPACK's own signs would make every row's direction biased)."""
    q, r = torch.linalg.qr(torch.randn(channels, channels, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).T


class PositiveRandomFeatures(nn.Module):
    r"""Performer's FAVOR+ features (Choromanski et al., 2021), whose dot products estimate the softmax kernel.

    .. math::
        \phi(x) = \frac{1}{\sqrt{m}} \exp\big(\omega_l \cdot \hat x - \lVert \hat x \rVert^2 / 2\big)_{l=1..m},
        \qquad \hat x = x / C^{1/4}, \qquad
        \mathbb{E}_\omega\big[\phi(q)\cdot\phi(k)\big] = \exp\big(q \cdot k / \sqrt{C}\big)

    with ``omega [m, C]`` Gaussian rows, orthogonal in blocks of ``C`` (each row's length drawn
    from the chi distribution, so each is still ``N(0, I)``). Every feature is positive, so the
    estimate never gives a negative weight. A per-query and a per-sequence constant is taken out
    of the exponent for range; both cancel in the normalised output. The matrix is drawn from a
    seed kept in the module's state (``state_dict``): :meth:`redraw` draws a new one (from
    torch's global generator), as does ``reset_parameters``, and with ``redraw_interval`` every
    that many training forwards.

    Args:
        features: random features ``m``.
        redraw_interval: redraw after this many training forwards, or ``None`` for never.
            (default: ``None``)
        orthogonal: orthogonal blocks (FAVOR+) rather than independent rows. (default: ``True``)
    """

    def __init__(self, features: int, *, redraw_interval: int | None = None, orthogonal: bool = True):
        super().__init__()
        self.features = check_int(features, "features")
        self.redraw_interval = None if redraw_interval is None else check_int(redraw_interval, "redraw_interval")
        self.orthogonal = check_bool(orthogonal, "orthogonal")
        self.seed, self.steps = 0, 0
        self._cache: dict = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw a new random matrix (its seed from torch's global CPU generator)."""
        self.seed, self.steps = int(torch.randint(0, 2**62, ())), 0
        self._cache.clear()

    def get_extra_state(self) -> dict:
        return {"seed": self.seed, "steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.seed, self.steps = int(state["seed"]), int(state["steps"])
        self._cache.clear()

    def projection(self, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``omega [m, C]`` for the current seed."""
        key = (channels, device, dtype)
        if key not in self._cache:
            gen = torch.Generator().manual_seed(self.seed)
            if self.orthogonal:
                blocks = [_haar(channels, gen) for _ in range(-(-self.features // channels))]
                norms = torch.randn(self.features, channels, generator=gen, dtype=torch.float64).norm(dim=1)
                omega = torch.cat(blocks)[: self.features] * norms[:, None]
            else:
                omega = torch.randn(self.features, channels, generator=gen, dtype=torch.float64)
            self._cache[key] = omega.to(device=device, dtype=dtype)
        return self._cache[key]

    def forward(self, x: Tensor, used: Tensor, query: bool) -> Tensor:
        """``x [B, L, H, C] -> [B, L, H, m]``; rows past a sequence's end (``~used [B, L]``) zero."""
        if not query and self.training and self.redraw_interval is not None:
            self.steps += 1
            if self.steps > self.redraw_interval:
                self.redraw()
        x = x * x.size(-1) ** -0.25
        logits = x @ self.projection(x.size(-1), x.device, x.dtype).T - (x * x).sum(-1, keepdim=True) / 2  # (B, L, H, m)
        pad = ~used[:, :, None, None]
        if query:  # a constant per query row cancels between numerator and denominator
            shift = logits.amax(dim=-1, keepdim=True)
        else:  # a constant per sequence and head cancels too
            shift = logits.masked_fill(pad, float("-inf")).amax(dim=(1, 3), keepdim=True)
            shift = torch.where(torch.isfinite(shift), shift, 0.0)  # an empty sequence
        return torch.exp(logits - shift).masked_fill(pad, 0.0) / math.sqrt(self.features)

    def extra_repr(self) -> str:
        interval = "" if self.redraw_interval is None else f", redraw_interval={self.redraw_interval}"
        return f"{self.features}{interval}" + ("" if self.orthogonal else ", orthogonal=False")


class LinearAttention(AttentionOperator):
    r"""Kernelised attention: ``Full()`` on every sequence through a feature map, in O(N).

    Per head, for the nodes ``j`` of the sequence of query ``i``:

    .. math::
        o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j)\, v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}

    computed as two sums per sequence (``[m, C]`` and ``[m]`` per head), so time and memory are
    O(N m C), never O(N^2), and no score ``s_ij`` is ever formed: there are no per-edge weights
    to return or drop. With :class:`PositiveRandomFeatures` (:func:`performer`) the quotient
    estimates softmax attention ``Full()`` and approaches it as the features grow; with an
    elementwise map (``"elu"``, ``"relu"``, ``"sigmoid"``) it is its own attention (linear
    transformers; SGFormer's and Polynormer's global branches). A query whose denominator is 0
    (``relu`` features all zero) gets zeros.

    Args:
        feature_map: a name in :data:`FEATURE_MAPS` or a module
            ``(x [B, L, H, C], used [B, L], query: bool) -> [B, L, H, m]``. (default: ``"elu"``)
    """

    has_weights = False

    def __init__(self, feature_map: str | nn.Module = "elu"):
        super().__init__()
        if isinstance(feature_map, str):
            feature_map = Elementwise(feature_map)
        if not isinstance(feature_map, nn.Module):
            raise TypeError(f"feature_map must be one of {tuple(FEATURE_MAPS)} or an nn.Module, "
                            f"got {type(feature_map).__name__}")
        self.feature_map = feature_map

    def reset_parameters(self) -> None:
        reset = getattr(self.feature_map, "reset_parameters", None)
        if callable(reset):
            reset()

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, *, dropout: float = 0.0,
                return_weights: bool = False) -> tuple[Tensor, None]:
        if return_weights:
            raise ValueError("kernelised attention has no per-edge weights: LinearAttention never forms a score "
                             "s_ij (it computes phi(q_i) . sum_j phi(k_j) v_j); return_attention_weights needs a "
                             "pattern (Full(), ...) or Linformer")
        if dropout:
            raise ValueError(f"kernelised attention has no weights to drop; dropout must be 0.0, got {dropout}")
        _, length, used = self.sequences(graph)
        phi_q = self.feature_map(self.pad(q, graph, length), used, True)  # (B, L, H, m)
        phi_k = self.feature_map(self.pad(k, graph, length), used, False)
        v = self.pad(v, graph, length)
        batch, _, heads, features = phi_q.shape
        if heads * features <= _BLOCK_DIAGONAL:
            # one matrix product per sum, all heads at once: the heads' [m, C] blocks on the diagonal
            # of an [H m, H (C + 1)] matrix (the 1 column carries the denominator). H times the
            # multiplications of one product per head, but a few small per-head products are slower.
            v1 = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)  # (B, L, H, C + 1)
            channels = v1.size(-1)
            kv = phi_k.flatten(2).transpose(1, 2) @ v1.flatten(2)  # (B, H m, H (C + 1))
            block = torch.arange(heads, device=v.device)
            diagonal = block.repeat_interleave(features)[:, None] == block.repeat_interleave(channels)[None, :]
            out = (phi_q.flatten(2) @ (kv * diagonal)).view(batch, -1, heads, channels)  # (B, L, H, C + 1)
            num, den = out[..., :-1], out[..., -1:]
        else:
            kv = torch.einsum("blhm,blhc->bhmc", phi_k, v)  # (B, H, m, C)
            num = torch.einsum("blhm,bhmc->blhc", phi_q, kv)
            den = torch.einsum("blhm,bhm->blh", phi_q, phi_k.sum(dim=1))[..., None]  # (B, L, H, 1)
        return self.unpad(num / den.clamp(min=torch.finfo(den.dtype).tiny), graph), None

    def __repr__(self) -> str:
        shown = repr(self.feature_map.name) if isinstance(self.feature_map, Elementwise) else repr(self.feature_map)
        return f"{type(self).__name__}({shown})"


def performer(features: int = 256, *, redraw_interval: int | None = None) -> LinearAttention:
    """Performer's FAVOR+ attention: ``LinearAttention(PositiveRandomFeatures(features, ...))``."""
    return LinearAttention(PositiveRandomFeatures(features, redraw_interval=redraw_interval))
