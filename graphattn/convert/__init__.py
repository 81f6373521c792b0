"""Converters: sequences, text, audio, images and graphs to ``Data`` with an attention pattern.

See :mod:`graphattn.convert.sequence` for what every returned ``Data`` holds.
"""

from .audio import DEFAULT_AUDIO_PATTERN, audio_to_graph, hz_to_mel, log_mel, mel_centers, mel_filterbank, mel_to_hz
from .graph import graph_to_data, to_networkx
from .image import image_to_graph, image_to_patches
from .sequence import attach_pattern, build_data, sequence_to_graph
from .text import Tokenizer, text_to_graph

__all__ = [
    "sequence_to_graph", "build_data", "attach_pattern",
    "Tokenizer", "text_to_graph",
    "log_mel", "mel_filterbank", "mel_centers", "hz_to_mel", "mel_to_hz", "audio_to_graph", "DEFAULT_AUDIO_PATTERN",
    "image_to_patches", "image_to_graph",
    "graph_to_data", "to_networkx",
]
