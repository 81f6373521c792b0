"""Drop-ins for PyG's attention layers: change one import line, keep the code, run on graphattn's kernels.

``from graphattn.nn import GATConv`` instead of ``from torch_geometric.nn import GATConv``: the same
constructor, forward, parameter names, ``repr``, defaults and return formats, the same answer
with the same weights (see ``docs/how-to/coming-from-pyg.md``).
"""

from .gat_conv import GATConv
from .gatv2_conv import GATv2Conv
from .gps_conv import GPSConv, GraphMultiheadAttention
from .transformer_conv import TransformerConv

__all__ = ["TransformerConv", "GATConv", "GATv2Conv", "GPSConv", "GraphMultiheadAttention"]
