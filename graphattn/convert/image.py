"""Images to attention graphs: non-overlapping square patches are nodes (as in ViT).

Patches are numbered row-major: patch ``(r, c)`` is node ``r * grid_width + c``, which is
the layout :class:`~graphattn.patterns.Grid2D` expects.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import MAX_INDEX, check_int, check_tensor
from ..patterns import Full, Grid2D, Intersection, Pattern, Union
from .sequence import build_data, check_pattern

__all__ = ["image_to_patches", "patches_to_images", "shift_images", "image_to_graph"]


def _check_image(image: object, patch_size: object) -> tuple[Tensor, int]:
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a Tensor [C, H, W], got {type(image).__name__}")
    if image.dim() == 2:
        image = image.unsqueeze(0)  # [H, W] is one channel
    if image.dim() != 3:
        raise ValueError(f"image must have shape [C, H, W] (or [H, W]), got {list(image.shape)}")
    check_tensor(image, "image", kind="real", finite=True, shape="[C, H, W]")
    check_int(patch_size, "patch_size", 1, MAX_INDEX)
    _, h, w = image.shape
    bad = [f"{name}={size}" for name, size in (("height", h), ("width", w)) if size == 0 or size % patch_size]
    if bad:
        raise ValueError(f"patch_size={patch_size} must divide the image height and width; it does not divide "
                         f"{' and '.join(bad)} (crop or pad the image first)")
    return image, patch_size


def image_to_patches(image: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """Cut an image into non-overlapping ``patch_size`` x ``patch_size`` patches.

    Each patch is flattened channel-major (``[C, p, p]`` -> ``C * p * p``), the layout of a
    ``Conv2d(C, D, p, stride=p)`` weight, so a linear layer on the features equals ViT's
    patch embedding.

    Shapes:
        image ``[C, H, W]`` (or ``[H, W]``) -> features ``[P, C * p * p]`` and pos ``[P, 2]``
        (row, col) with ``P = (H / p) * (W / p)``, row-major.

    Raises:
        ValueError: ``patch_size`` does not divide the height and / or width (named).
    """
    image, p = _check_image(image, patch_size)
    c, h, w = image.shape
    rows, cols = h // p, w // p
    patches = image.unfold(1, p, p).unfold(2, p, p)  # (C, rows, cols, p, p)
    feats = patches.permute(1, 2, 0, 3, 4).reshape(rows * cols, c * p * p)  # (P, C*p*p)
    r, cc = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    pos = torch.stack([r.reshape(-1), cc.reshape(-1)], dim=1).to(image.device)  # (P, 2)
    return feats, pos


def _grid_widths(pattern: Pattern) -> set[int]:
    if isinstance(pattern, Grid2D):
        return set() if pattern.width is None else {pattern.width}
    if isinstance(pattern, (Union, Intersection)):
        return set().union(*(_grid_widths(p) for p in pattern.parts))
    return set()


def image_to_graph(image: Tensor, patch_size: int, pattern: Pattern | None = None, y: object = None) -> Data:
    """An image as an attention graph over its patches.

    Args:
        image: ``[C, H, W]`` (or ``[H, W]``); ``patch_size`` must divide ``H`` and ``W``.
        patch_size: the side of the square patches.
        pattern: attention over patches (default ``Full()``, as ViT); ``Grid2D(r, width)``
            must use ``width = W / patch_size`` (``Grid2D(r)`` fits square grids).
        y: a label for the image.

    Returns:
        ``Data`` with ``x`` ``[P, C*p*p]``, ``pos`` ``[P, 2]`` (row, col), ``grid_height``,
        ``grid_width`` and the attention edges. A 28 x 28 image with ``patch_size=4`` gives
        a 7 x 7 grid of 49 nodes.

    Raises:
        ValueError: ``patch_size`` does not divide the image, or a ``Grid2D`` in ``pattern``
            has another width than the patch grid.
    """
    pattern = Full() if pattern is None else check_pattern(pattern)
    feats, pos = image_to_patches(image, patch_size)
    h, w = image.shape[-2:]
    grid_h, grid_w = h // patch_size, w // patch_size
    wrong = sorted(_grid_widths(pattern) - {grid_w})
    if wrong:
        raise ValueError(f"pattern has Grid2D width {wrong} but the patch grid has grid_width={grid_w} columns")
    return build_data(feats, pattern, pos=pos, y=y, grid_height=grid_h, grid_width=grid_w)


def patches_to_images(feats: Tensor, grid_height: int, grid_width: int, patch_size: int) -> Tensor:
    """The inverse of :func:`image_to_patches` for a batch: ``[B, P, C*p*p]`` -> ``[B, C, H, W]``
    with ``P = grid_height * grid_width`` row-major patches, ``H = grid_height * p``, ``W = grid_width * p``."""
    for value, name in ((grid_height, "grid_height"), (grid_width, "grid_width"), (patch_size, "patch_size")):
        check_int(value, name, 1, MAX_INDEX)
    p, per_patch = patch_size, feats.size(-1) if feats.dim() == 3 else 0
    if feats.dim() != 3 or feats.size(1) != grid_height * grid_width or per_patch % (p * p):
        raise ValueError(f"feats must have shape [B, {grid_height * grid_width}, C * {p * p}], got {list(feats.shape)}")
    b, c = feats.size(0), per_patch // (p * p)
    grid = feats.reshape(b, grid_height, grid_width, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, rows, p, cols, p)
    return grid.reshape(b, c, grid_height * p, grid_width * p)


def shift_images(images: Tensor, max_shift: int, fill: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Random translations: each image of ``[B, C, H, W]`` moves by its own ``(dy, dx)``, each drawn
    uniformly from ``-max_shift .. max_shift``; what moves out is cropped, what moves in is ``fill``
    (the background: for normalised MNIST ``-mean / std``). ``max_shift=0`` returns ``images``."""
    check_int(max_shift, "max_shift", 0, MAX_INDEX)
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {getattr(images, 'shape', type(images).__name__)}")
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    s = max_shift
    padded = torch.nn.functional.pad(images, (s, s, s, s), value=fill)  # (B, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * s + 1, (b, 2), generator=generator).tolist()  # top-left corner in the padding
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
