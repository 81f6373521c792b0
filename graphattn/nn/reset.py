"""``reset_parameters()`` on a module whose type says only ``nn.Module`` (an element of a
``ModuleList``, a user's conv or norm): typed through :class:`Resettable`, with the
``AttributeError`` a module without the method has always raised."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Resettable", "reset_parameters"]


@runtime_checkable
class Resettable(Protocol):
    """A module that re-draws its parameters in place."""

    def reset_parameters(self) -> None: ...


def reset_parameters(module: object, name: str) -> None:
    """``module.reset_parameters()``; ``name`` names the module when it has none (``AttributeError``)."""
    if not isinstance(module, Resettable):
        raise AttributeError(f"{name} ({type(module).__name__}) has no reset_parameters() to reset it with")
    module.reset_parameters()
