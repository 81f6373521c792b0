"""GPSConv: PyG's GraphGPS layer, whose global attention runs along any pattern on graphattn's kernels."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.attention import PerformerAttention
from torch_geometric.nn.inits import reset
from torch_geometric.nn.resolver import activation_resolver, normalization_resolver
from torch_geometric.utils import to_dense_batch

from ... import ops
from ...checks import check_int, check_module, check_probability
from ...ops import AttentionGraph
from ...patterns import Full, Pattern, parse_pattern
from ..operator import check_operator
from ..reset import reset_parameters
from .common import check_backend

__all__ = ["GPSConv", "GraphMultiheadAttention", "ATTN_TYPES"]

#: PyG's names for ``attn_type``; anything else is a pattern (or its text).
ATTN_TYPES = ("multihead", "performer")
#: ``torch.nn.MultiheadAttention`` options that add keys outside the graph or another key width.
_OFF_GRAPH = ("add_bias_kv", "add_zero_attn", "kdim", "vdim")


class GraphMultiheadAttention(nn.MultiheadAttention):
    """``torch.nn.MultiheadAttention`` (the same parameters, initialisation and ``state_dict``) that
    also attends along a graph: ``attn(x, graph)`` is self-attention of ``x [N, C]`` over the edges of
    an :class:`~graphattn.ops.AttentionGraph` on graphattn's kernels; with ``Full()`` laid on each
    graph of a batch it equals ``attn(h, h, h, key_padding_mask=~mask)`` on the padded batch. An
    ``operator`` (``Linformer``, ``LinearAttention``; :mod:`graphattn.nn.operator`) computes that
    attention in place of the kernels. Called as ``attn(query, key, value, ...)`` it is torch's own
    module."""

    def __init__(self, embed_dim: int, num_heads: int, *, backend: str = "auto", operator: nn.Module | None = None,
                 **kwargs: Any):
        for name in _OFF_GRAPH:
            if kwargs.get(name):
                raise ValueError(f"attn_kwargs {name}={kwargs[name]!r} adds keys outside the graph (or another key "
                                 f"width); graph attention supports dropout and bias only")
        super().__init__(embed_dim, num_heads, batch_first=True, **kwargs)
        self.backend = check_backend(backend)
        check_operator(operator, score="dot", edge_dim=None, dropout=self.dropout)
        self.operator = operator

    def forward(self, query: Tensor, key: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(key, AttentionGraph):
            return super().forward(query, key, *args, **kwargs)
        n, heads = query.size(0), self.num_heads
        q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).view(n, 3, heads, -1).unbind(1)  # (N, H, C)
        if self.operator is not None:
            out = self.operator(q, k, v, key, dropout=self.dropout if self.training else 0.0)[0]
        else:
            out = ops.attention(q, k, v, key, dropout=self.dropout, training=self.training, backend=self.backend).out
        return self.out_proj(out.reshape(n, self.embed_dim))


class GPSConv(nn.Module):
    r"""The GPS layer (Rampasek et al., 2022), as ``torch_geometric.nn.GPSConv``: a local
    message-passing layer and global attention side by side, then an MLP, each with a residual and
    a norm.

    .. math::
        h_L = \operatorname{N}_1\big(x + \operatorname{Dropout}(\operatorname{MPNN}(x, E_{graph}))\big),
        \qquad
        h_G = \operatorname{N}_2\big(x + \operatorname{Dropout}(\operatorname{Attn}(x))\big)

        x' = \operatorname{N}_3\big(h + \operatorname{MLP}(h)\big), \qquad h = h_L + h_G

    Same constructor, forward, parameter names, ``repr`` and defaults as PyG's layer. ``attn_type``
    takes PyG's names: ``"multihead"`` is attention over all nodes of each graph (``Full()`` laid on
    ``batch``, on graphattn's dense kernel: PyG's answer with the same weights; ``attn`` is a
    :class:`GraphMultiheadAttention`, PyG's ``MultiheadAttention`` parameters), ``"performer"`` is
    PyG's ``PerformerAttention`` as PyG runs it. Beyond PyG it takes any pattern (or its text) for
    who attends to whom in each graph: ``bigbird(...)``, ``Window(r)`` over the nodes' order,
    ``VirtualNodes(k) | Expander(d)`` (Exphormer; the layer then learns ``k`` rows ``virtual``,
    inserted after each graph's nodes for the attention only). The MLP is
    ``Linear(C, 2C) -> act -> Dropout -> Linear(2C, C) -> Dropout``, as in PyG.

    Args:
        channels: node width ``C`` (input and output).
        conv: the local layer, called as ``conv(x, edge_index, **kwargs)``, or ``None``.
        heads: attention heads ``H``. (default: ``1``)
        dropout: dropout on the branch outputs and inside the MLP. (default: ``0.0``)
        act, act_kwargs: the MLP's activation for PyG's ``activation_resolver``. (default: ``"relu"``)
        norm, norm_kwargs: the three norms for PyG's ``normalization_resolver``, or ``None``.
            (default: ``"batch_norm"``)
        attn_type: ``"multihead"``, ``"performer"``, a pattern, or ``None``: no global branch,
            ``x' = N_3(h_L + MLP(h_L))``, the local layer with a residual, a norm, dropout and a
            feed-forward block (the "GNN+" of Luo et al., 2025; then ``conv`` is required).
            (default: ``"multihead"``)
        attn_kwargs: arguments of the attention module (``dropout``, ``bias``; the Performer's
            ``kernel``, ...). (default: ``None``)
        pattern: the pattern of the global branch, as a keyword (the same as ``attn_type=pattern``).
        operator: an attention operator for the global branch (``Linformer``, ``LinearAttention``:
            :mod:`graphattn.nn.operator`), over ``Full()`` (keyword only). (default: ``None``)
        backend: graphattn's kernel for the attention (keyword only). (default: ``"auto"``)

    Shapes:
        - input: ``x`` ``(N, C)``; ``edge_index`` in any form ``conv`` accepts; ``batch`` ``(N)``;
          ``attention`` (keyword) an ``AttentionGraph`` of the pattern on the ``N`` nodes, built once
          per batch by a model for all its layers
        - output: ``(N, C)``
    """

    def __init__(
        self,
        channels: int,
        conv: nn.Module | None,
        heads: int = 1,
        dropout: float = 0.0,
        act: str | nn.Module = "relu",
        act_kwargs: dict[str, Any] | None = None,
        norm: str | None = "batch_norm",
        norm_kwargs: dict[str, Any] | None = None,
        attn_type: str | Pattern | None = "multihead",
        attn_kwargs: dict[str, Any] | None = None,
        *,
        pattern: Pattern | str | None = None,
        backend: str = "auto",
        operator: nn.Module | None = None,
    ):
        super().__init__()
        check_int(channels, "channels")
        check_int(heads, "heads")
        check_probability(dropout, "dropout")
        check_module(conv, "conv", "a local message-passing module: forward(x, edge_index, ...)", arguments=2)
        if pattern is not None:
            if attn_type != "multihead":
                raise ValueError(f"give the pattern once: attn_type={attn_type!r} and pattern={pattern!r}")
            attn_type = pattern
        self.channels, self.conv, self.heads, self.dropout = channels, conv, heads, dropout
        self.pattern = None if attn_type is None else _pattern(attn_type)
        self.attn_type = attn_type if isinstance(attn_type, str) and attn_type in ATTN_TYPES else self.pattern
        attn_kwargs = attn_kwargs or {}
        self.attn: GraphMultiheadAttention | PerformerAttention | None
        if attn_type is None:
            if conv is None:
                raise ValueError("conv and attn_type cannot both be None: the layer would have no branch")
            if attn_kwargs or operator is not None:
                raise ValueError("attn_kwargs and operator belong to the global branch, and attn_type=None has none")
            self.attn = None
        elif self.attn_type == "performer":
            if operator is not None:
                raise ValueError("operator= computes the global branch in place of graph attention; "
                                 "attn_type='performer' is PyG's own module: give one of them")
            self.attn = PerformerAttention(channels=channels, heads=heads, **attn_kwargs)
        else:
            self.attn = GraphMultiheadAttention(channels, heads, backend=backend, operator=operator, **attn_kwargs)
        k = self.pattern.extra_nodes if self.pattern is not None else 0
        self.virtual = nn.Parameter(torch.empty(k, channels)) if k else None
        self.mlp = nn.Sequential(
            nn.Linear(channels, channels * 2),
            _resolve(activation_resolver, act, "act", "an activation: a name such as 'relu' or an nn.Module",
                     **(act_kwargs or {})),
            nn.Dropout(dropout),
            nn.Linear(channels * 2, channels),
            nn.Dropout(dropout),
        )
        norm_kwargs = norm_kwargs or {}
        self.norm1, self.norm2, self.norm3 = (
            None if norm is None else _resolve(normalization_resolver, norm, "norm", "a norm: a name such as "
                                               "'batch_norm', an nn.Module, or None", channels, **norm_kwargs)
            for _ in range(3))
        if self.attn is None:
            self.norm2 = None
        self.norm_with_batch = _takes_batch(self.norm1)
        if self.virtual is not None:
            nn.init.normal_(self.virtual, std=0.02)

    def reset_parameters(self) -> None:
        if self.conv is not None:
            reset_parameters(self.conv, "conv")
        if self.attn is not None:
            self.attn._reset_parameters()
        reset(self.mlp)
        if self.virtual is not None:
            nn.init.normal_(self.virtual, std=0.02)
        for name, norm in (("norm1", self.norm1), ("norm2", self.norm2), ("norm3", self.norm3)):
            if norm is not None:
                reset_parameters(norm, name)

    @classmethod
    def from_pyg(cls, gps: nn.Module, *, pattern: Pattern | str = "Full()", backend: str = "auto") -> GPSConv:
        """A layer with a copy of PyG's ``GPSConv(attn_type="multihead")`` (its local conv, attention,
        MLP and norms, copied, not shared). With ``Full()`` it computes what ``gps`` computes; another
        ``pattern`` keeps the weights and changes who attends to whom."""
        from torch_geometric.nn import GPSConv as PyGGPSConv

        if not isinstance(gps, PyGGPSConv):
            raise TypeError(f"gps must be a torch_geometric.nn.GPSConv, got {type(gps).__name__}")
        if not isinstance(gps.attn, nn.MultiheadAttention):
            raise ValueError(f"gps must use attn_type='multihead', got {gps.attn_type!r}")
        layer = cls(gps.channels, None, gps.heads, gps.dropout, norm=None, attn_type=pattern, backend=backend,
                    attn_kwargs={"dropout": gps.attn.dropout, "bias": gps.attn.in_proj_bias is not None})
        assert isinstance(layer.attn, GraphMultiheadAttention)  # attn_type is a pattern
        layer.attn.to(gps.attn.in_proj_weight).load_state_dict(gps.attn.state_dict())
        layer.conv, layer.mlp = copy.deepcopy(gps.conv), copy.deepcopy(gps.mlp)
        layer.norm1, layer.norm2, layer.norm3 = (copy.deepcopy(n) for n in (gps.norm1, gps.norm2, gps.norm3))
        layer.norm_with_batch = _takes_batch(layer.norm1)
        return layer.to(gps.attn.in_proj_weight.device)

    def forward(self, x: Tensor, edge_index: Any, batch: Tensor | None = None, *,
                attention: AttentionGraph | None = None, **kwargs: Any) -> Tensor:
        """``x`` through both branches and the MLP. ``attention`` is the prepared graph of the
        global branch (``AttentionGraph.build(pattern, N, batch=batch)``, what a model builds once
        for all its layers); without it the layer lays its pattern on ``batch``. ``kwargs``
        (e.g. ``edge_attr``) go to ``conv``."""
        hs = []
        if self.conv is None and kwargs:  # never dropped silently
            raise ValueError(f"{', '.join(kwargs)} would go to the local conv, but this layer has conv=None")
        if self.conv is not None:
            h = F.dropout(self.conv(x, edge_index, **kwargs), self.dropout, self.training)
            hs.append(self._norm(self.norm1, h + x, batch))
        if self.attn is not None:
            h = F.dropout(self._global(x, batch, attention), self.dropout, self.training)
            hs.append(self._norm(self.norm2, h + x, batch))
        out = sum(hs)
        return self._norm(self.norm3, out + self.mlp(out), batch)

    def _global(self, x: Tensor, batch: Tensor | None, attention: AttentionGraph | None) -> Tensor:
        """The attention branch before its dropout and residual, ``(N, C)``."""
        assert self.attn is not None  # forward runs the branch only when there is one
        if isinstance(self.attn, PerformerAttention):
            if attention is not None:
                raise ValueError("attention= (a prepared graph) needs a pattern; attn_type='performer' attends "
                                 "to every node of each graph through PyG's PerformerAttention")
            h, mask = to_dense_batch(x, batch)
            return self.attn(h, mask=mask)[mask]
        if attention is None:
            attention = AttentionGraph.build(self.pattern, x.size(0), batch=batch).to(x.device)
        elif not isinstance(attention, AttentionGraph):
            raise TypeError(f"attention must be an AttentionGraph or None, got {type(attention).__name__}")
        k = 0 if self.virtual is None else self.virtual.size(0)
        if attention.num_real_nodes != x.size(0) or attention.num_virtual != k:
            raise ValueError(f"attention must lay {k} virtual node(s) on the {x.size(0)} nodes of x, got {attention!r}")
        h = attention.with_virtual(x, self.virtual) if self.virtual is not None else x  # (N + B * k, C)
        return attention.real(self.attn(h, attention))  # (N, C)

    def _norm(self, norm: nn.Module | None, h: Tensor, batch: Tensor | None) -> Tensor:
        if norm is None:
            return h
        return norm(h, batch=batch) if self.norm_with_batch else norm(h)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, conv={self.conv}, heads={self.heads}, "
                f"attn_type={self.attn_type})")


def _pattern(attn_type: object) -> Pattern | None:
    """The pattern of the global branch: ``Full()`` for ``"multihead"``, None for ``"performer"``."""
    if isinstance(attn_type, str) and attn_type in ATTN_TYPES:
        return Full() if attn_type == "multihead" else None
    if isinstance(attn_type, str):
        try:
            return parse_pattern(attn_type)
        except ValueError as err:
            raise ValueError(f"attn_type must be one of {ATTN_TYPES} or a pattern, got {attn_type!r} ({err})") from None
    if isinstance(attn_type, Pattern):
        return attn_type
    raise TypeError(f"attn_type must be one of {ATTN_TYPES} or a pattern, got {type(attn_type).__name__}")


def _takes_batch(norm: nn.Module | None) -> bool:
    """Whether a norm takes ``batch`` (GraphNorm, PyG's LayerNorm in graph mode, ...), as PyG checks."""
    return norm is not None and "batch" in inspect.signature(norm.forward).parameters


def _resolve(resolver: Any, query: object, name: str, expected: str, *args: object, **kwargs: Any) -> nn.Module:
    """PyG's ``resolver(query, *args, **kwargs)``, with its errors (and ``None``) refused by ``name``."""
    if not isinstance(query, (str, nn.Module)):
        raise TypeError(f"{name} must be {expected}, got {type(query).__name__} {query!r}")
    try:
        module = resolver(query, *args, **kwargs)
    except (ValueError, TypeError) as e:
        detail = (str(e).splitlines() or [""])[0]
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise ValueError(f"{name}={query!r} is not {expected} ({detail})") from None
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name}={query!r} resolves to {type(module).__name__}, not {expected}")
    return module
