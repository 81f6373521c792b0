"""What ``torch.jit.script`` compiles for a drop-in layer: PyG's overloaded forward signatures,
each handing the call to the layer itself, in Python.

graphattn's kernels prepare their plans in Python, which TorchScript cannot compile. A scripted
layer therefore keeps the layer's Python forward (``torch.jit.ignore``): it runs inside scripted
models exactly as the layer runs in eager mode, with the same parameters and the same numbers, but
the scripted model cannot be saved with ``torch.jit.save`` (TorchScript is deprecated in torch
2.13; ``torch.compile`` is its successor and compiles the layer itself). Its annotations are
the runtime ``typing`` forms TorchScript reads (no ``from __future__ import annotations`` here).
"""


import itertools

import torch
from torch import Tensor
from torch.jit import _overload_method as overload  # typing.overload to TorchScript; mypy sees redefinitions
from torch_geometric.typing import Adj, NoneType, OptTensor, PairTensor, SparseTensor

__all__ = ["ScriptedLayer"]

#: The layers behind scripted modules (a scripted module keeps ints, not Python objects); an entry
#: lives as long as the process, as the scripted module may.
_LAYERS: dict[int, torch.nn.Module] = {}
_NEXT = itertools.count()


class ScriptedLayer(torch.nn.Module):
    """The scriptable stand-in of ``layer`` (see the module docstring); its parameters are the layer's."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.key = next(_NEXT)
        _LAYERS[self.key] = layer
        for name, child in layer.named_children():  # registered, so the scripted model holds the parameters
            self.add_module(name, child)

    @overload
    def forward(self, x: Tensor | PairTensor, edge_index: Adj, edge_attr: OptTensor = None,
                return_attention_weights: NoneType = None) -> Tensor:
        pass

    @overload
    def forward(self, x: Tensor | PairTensor, edge_index: Tensor, edge_attr: OptTensor = None,  # noqa: F811
                return_attention_weights: bool = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        pass

    @overload
    def forward(self, x: Tensor | PairTensor, edge_index: SparseTensor, edge_attr: OptTensor = None,  # noqa: F811
                return_attention_weights: bool = None) -> tuple[Tensor, SparseTensor]:
        pass

    def forward(self, x: Tensor | PairTensor, edge_index: Adj, edge_attr: OptTensor = None,  # noqa: F811
                return_attention_weights: bool | None = None):
        if isinstance(return_attention_weights, bool):
            if isinstance(edge_index, Tensor):
                return self._with_weights(x, edge_index, edge_attr, return_attention_weights)
            else:
                return self._with_sparse_weights(x, edge_index, edge_attr, return_attention_weights)
        else:
            return self._plain(x, edge_index, edge_attr)

    @torch.jit.ignore
    def _plain(self, x: Tensor | PairTensor, edge_index: Adj, edge_attr: OptTensor) -> Tensor:
        return _layer(self)(x, edge_index, edge_attr)

    @torch.jit.ignore
    def _with_weights(self, x: Tensor | PairTensor, edge_index: Tensor, edge_attr: OptTensor,
                      want: bool) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return _layer(self)(x, edge_index, edge_attr, return_attention_weights=want)

    @torch.jit.ignore
    def _with_sparse_weights(self, x: Tensor | PairTensor, edge_index: SparseTensor, edge_attr: OptTensor,
                             want: bool) -> tuple[Tensor, SparseTensor]:
        return _layer(self)(x, edge_index, edge_attr, return_attention_weights=want)


def _layer(scripted: ScriptedLayer) -> torch.nn.Module:
    """The layer behind a scripted stand-in, in the stand-in's train / eval mode."""
    layer = _LAYERS[scripted.key]
    layer.training = scripted.training
    return layer
