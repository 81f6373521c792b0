"""Feature encodings: modules ``encoding(pos) -> [N, d_model]``, added to the node features.

``x = x + encoding(pos)`` before the first layer. Sequence positions come from the data
(``data.pos``) or from :func:`graphattn.patterns.positions` (``0 .. n-1`` per sequence).
The graph encodings read raw values that PyG's transforms store on each graph
(:meth:`LaplacianEncoding.transform`, :meth:`RandomWalkEncoding.transform`) and project them
to the model width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from ...checks import check_allocation, check_float, check_int, check_tensor
from ._pos import check_coords

__all__ = ["SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding"]


class SinusoidalEncoding(nn.Module):
    r"""Fixed sine / cosine position features (Vaswani et al., 2017).

    .. math::
        PE_{p, 2i} = \sin\!\big(p / b^{2i/d}\big), \qquad PE_{p, 2i+1} = \cos\!\big(p / b^{2i/d}\big)

    with ``d = d_model`` and ``b = base`` (an odd ``d_model`` drops the last cosine). Positions
    may be fractional (strided or time-stamped frames). With ``D``-dimensional positions
    (``pos`` ``[N, D]``, e.g. image patches ``(row, col)``) the channels are split into ``D``
    equal blocks and block ``a`` encodes axis ``a`` with ``d = d_model / D`` (the 2-D sin-cos
    of MAE / ViT). No parameters.

    Args:
        d_model: output width.
        base: the wavelength base ``b``. (default: ``10000.0``)

    Shapes:
        - input: ``pos`` ``(N)`` or ``(N, D)``
        - output: ``(N, d_model)``, in ``pos``'s float dtype (default dtype for integer ``pos``)
    """

    def __init__(self, d_model: int, base: float = 10000.0):
        super().__init__()
        self.d_model = check_int(d_model, "d_model")
        self.base = check_float(base, "base", above=0.0, below=float("inf"))

    def forward(self, pos: Tensor) -> Tensor:
        coords = check_coords(pos, "SinusoidalEncoding")  # (N, D)
        n, dims = coords.shape
        if self.d_model % dims:
            raise ValueError(f"SinusoidalEncoding: d_model={self.d_model} must be divisible by the {dims} position axes of pos")
        width = self.d_model // dims
        dtype = coords.dtype if coords.is_floating_point() else torch.get_default_dtype()
        i = torch.arange((width + 1) // 2, device=coords.device, dtype=dtype)
        inv_freq = self.base ** (-2 * i / width)  # (width / 2,)
        angle = coords.to(dtype)[..., None] * inv_freq  # (N, D, width / 2)
        pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)[..., :width]  # (N, D, width)
        return pe.reshape(n, dims * width)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.d_model})"


class LearnedEncoding(nn.Module):
    r"""A learned vector per position (BERT, GPT): ``PE_p = W[p]`` for ``0 <= p < max_len``.

    Positions past ``max_len`` raise ``ValueError``: a learned table cannot extrapolate (use
    :class:`SinusoidalEncoding` or a score encoding such as :class:`RotaryEncoding`).

    Args:
        max_len: number of positions.
        d_model: output width.

    Shapes:
        - input: ``pos`` ``(N)`` integer
        - output: ``(N, d_model)``
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = check_int(max_len, "max_len")
        self.d_model = check_int(d_model, "d_model")
        check_allocation(max_len * d_model * 4, f"LearnedEncoding(max_len={max_len}, d_model={d_model})'s table", "cpu",
                         "use a smaller max_len, or SinusoidalEncoding / RotaryEncoding, which have no table")
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)  # GPT-2: small next to the token features

    def forward(self, pos: Tensor) -> Tensor:
        if not isinstance(pos, Tensor):
            raise TypeError(f"LearnedEncoding: pos must be an integer tensor of shape [N], got {type(pos).__name__}")
        if pos.dim() != 1:
            raise ValueError(f"LearnedEncoding: pos must have shape [N] (one integer position per node), got {list(pos.shape)}")
        if pos.is_floating_point() or pos.is_complex() or pos.dtype == torch.bool:
            raise TypeError(f"LearnedEncoding: pos must be an integer tensor, got dtype {pos.dtype}")
        if pos.numel():
            lo, hi = int(pos.min()), int(pos.max())
            if lo < 0 or hi >= self.max_len:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"LearnedEncoding(max_len={self.max_len}) got position {bad}; positions must lie in "
                    f"[0, {self.max_len}). Use a larger max_len, or SinusoidalEncoding / RotaryEncoding to extrapolate"
                )
        return self.weight[pos]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.max_len}, {self.d_model})"


class _ProjectedEncoding(nn.Module):
    """A graph encoding whose raw ``[N, width]`` values PyG's transform computes once per graph,
    projected to the model width by one linear map. A subclass names the ``Data`` attribute its
    :meth:`transform` writes (``attr_name``) and what the values are (``what``, for errors)."""

    attr_name = what = ""

    def __init_subclass__(cls, *, attr_name: str, what: str, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.attr_name, cls.what = attr_name, what

    def __init__(self, width: int, d_model: int):
        super().__init__()
        self.d_model = check_int(d_model, "d_model")
        self.lin = nn.Linear(width, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def _check_raw(self, pe: object) -> Tensor:
        width, owner = self.lin.in_features, type(self).__name__
        check_tensor(pe, f"{owner}: pe", kind="float", finite=True, shape=f"[N, {width}] ({self.what})")
        if pe.dim() != 2 or pe.size(1) != width:
            raise ValueError(f"{owner}: pe must be a float tensor of shape [N, {width}] ({self.what}), "
                             f"got {pe.dtype} {list(pe.shape)}")
        return pe


class LaplacianEncoding(_ProjectedEncoding, attr_name="laplacian_eigenvector_pe", what="Laplacian eigenvectors"):
    r"""Laplacian eigenvector positions (Dwivedi et al., 2020) projected to the model width.

    The raw values are the ``k`` eigenvectors of the normalised Laplacian
    ``I - D^{-1/2} A D^{-1/2}`` with the smallest non-zero eigenvalues, as PyG's
    ``AddLaplacianEigenvectorPE`` computes them once per graph (:meth:`transform`). An
    eigenvector's sign is arbitrary, so while training each graph's eigenvectors get fresh
    random signs on every call, and the model learns not to depend on them:

    .. math::
        PE_i = W \, (s \odot u_i), \quad s \sim \mathrm{Uniform}\{-1, 1\}^k \text{ (training)},
        \; s = 1 \text{ (eval)}

    Example::

        enc = LaplacianEncoding(k=8, d_model=64)
        data = enc.transform()(data)          # or pre_transform=enc.transform() on a dataset
        x = x + enc(data.laplacian_eigenvector_pe, batch=data.batch)

    Graphs need more than ``k`` nodes (PyG's transform returns fewer columns otherwise).

    Args:
        k: number of eigenvectors.
        d_model: output width.

    Shapes:
        - input: ``pe`` ``(N, k)``; ``batch`` ``(N)`` (optional: one sign draw per graph)
        - output: ``(N, d_model)``
    """

    def __init__(self, k: int, d_model: int):
        self.k = check_int(k, "k")
        super().__init__(k, d_model)

    def transform(self, **kwargs) -> AddLaplacianEigenvectorPE:
        """PyG's transform that stores the raw ``[N, k]`` values as ``data.laplacian_eigenvector_pe``;
        ``kwargs`` go to it (e.g. ``is_undirected=True`` for the faster symmetric solver)."""
        return AddLaplacianEigenvectorPE(self.k, attr_name=self.attr_name, **kwargs)

    def forward(self, pe: Tensor, batch: Tensor | None = None) -> Tensor:
        pe = self._check_raw(pe)
        if self.training:
            if batch is None:
                sign = torch.randint(0, 2, (1, self.k), device=pe.device) * 2 - 1  # (1, k)
            else:
                check_tensor(batch, "LaplacianEncoding: batch", kind="int", shape=f"[N] = [{pe.size(0)}]")
                if batch.dim() != 1 or batch.numel() != pe.size(0):
                    raise ValueError(f"LaplacianEncoding: batch must have shape [N] = [{pe.size(0)}], got {list(batch.shape)}")
                num_graphs = int(batch.max()) + 1 if batch.numel() else 0
                sign = (torch.randint(0, 2, (num_graphs, self.k), device=pe.device) * 2 - 1)[batch]  # (N, k)
            pe = pe * sign.to(pe.dtype)
        return self.lin(pe)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k}, d_model={self.d_model})"


class RandomWalkEncoding(_ProjectedEncoding, attr_name="random_walk_pe", what="random-walk return probabilities"):
    r"""Random-walk positions (Dwivedi et al., 2022) projected to the model width.

    The raw values are the return probabilities of a random walk,
    ``u_i = [(P)_{ii}, (P^2)_{ii}, ..., (P^L)_{ii}]`` with ``P = D^{-1} A`` and
    ``L = walk_length``, as PyG's ``AddRandomWalkPE`` stores them (:meth:`transform`). They
    have no sign ambiguity: ``PE_i = W u_i``.

    Example::

        enc = RandomWalkEncoding(walk_length=16, d_model=64)
        data = enc.transform()(data)
        x = x + enc(data.random_walk_pe)

    Args:
        walk_length: number of walk steps ``L``.
        d_model: output width.

    Shapes:
        - input: ``pe`` ``(N, walk_length)``
        - output: ``(N, d_model)``
    """

    def __init__(self, walk_length: int, d_model: int):
        self.walk_length = check_int(walk_length, "walk_length")
        super().__init__(walk_length, d_model)

    def transform(self) -> AddRandomWalkPE:
        """PyG's transform that stores the raw ``[N, walk_length]`` values as ``data.random_walk_pe``;
        a graph whose walk matrices cannot fit is refused before they are built."""
        return _CheckedRandomWalkPE(self.walk_length, attr_name=self.attr_name)

    def forward(self, pe: Tensor) -> Tensor:
        return self.lin(self._check_raw(pe))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(walk_length={self.walk_length}, d_model={self.d_model})"


class _CheckedRandomWalkPE(AddRandomWalkPE):
    """PyG's ``AddRandomWalkPE``, refused up front where its matrices cannot fit. It forms the
    powers ``P^t``, ``t <= L``: dense ``[N, N]`` up to 2,000 nodes, else sparse, where ``P^t``
    holds up to ``N min(N, d^t)`` entries for a mean degree ``d`` (on a graph without much local
    clustering, such as a random one, the ``L``-hop neighbourhoods fill the matrix)."""

    def forward(self, data):
        n, d = data.num_nodes, data.num_edges / max(data.num_nodes, 1)
        entries = n * n if n <= 2000 else n * min(n, d ** self.walk_length)
        check_allocation(int(3 * 12 * entries), f"random-walk encodings of walk_length={self.walk_length} on "
                         f"{n:,} nodes (P^L holds up to {entries:,.0f} entries)", data.edge_index.device,
                         "use a shorter walk (encoding_dim) or Laplacian encodings, which stay sparse")
        return super().forward(data)
