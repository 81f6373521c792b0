"""Argument checks for the public API, so every error reads the same way.

The rule, everywhere in graphattn: a value of the wrong **type** raises ``TypeError``; a value of
the right type that is out of range or otherwise unusable raises ``ValueError``. Both name the
argument and say what was expected. Public constructors and entry points validate once;
internal calls trust their inputs.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Sequence
from typing import Literal, TypeVar, cast, overload

import torch
from torch import Tensor, nn

T = TypeVar("T")

__all__ = ["check_int", "check_float", "check_probability", "check_choice", "check_bool", "check_path", "all_finite",
           "check_device", "check_tensor", "check_int_list", "check_allocation", "memory_budget", "check_module",
           "MAX_INDEX", "MAX_SEED"]

#: The largest size, reach or index a pattern accepts: positions are int64 and ``q * n + k``
#: codes must not overflow, so sizes stay below 2**31.
MAX_INDEX = (1 << 31) - 1
#: The largest seed: ``torch.Generator.manual_seed`` takes 64-bit integers.
MAX_SEED = (1 << 63) - 1


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value: object, name: str, *, above: float | None = None, minimum: float | None = None,
                below: float | None = None) -> float:
    """``value`` as a float if it is a finite real number (not a bool) that is ``> above``,
    ``>= minimum`` and ``< below`` (each bound only where given). NaN and the infinities are
    refused everywhere: no setting of graphattn means anything at infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    wanted = [text for text, bound in ((f"> {above}", above), (f">= {minimum}", minimum), (f"< {below}", below))
              if bound is not None and math.isfinite(bound)]
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int past float's range
        finite = False
    if (not finite or (above is not None and not value > above) or (minimum is not None and not value >= minimum)
            or (below is not None and not value < below)):
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}... ({len(repr(value))} digits)"
        kind = "float" if finite else "finite float"
        raise ValueError(f"{name} must be a {kind}{' ' if wanted else ''}{' and '.join(wanted)}, got {shown}")
    return float(value)


def check_probability(value: object, name: str) -> float:
    """``value`` if it is a real number in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_choice(value: object, name: str, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return cast(T, value)  # equal to one of the choices (for the str choices of graphattn: a str)


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


@overload
def check_path(value: object, name: str, *, optional: Literal[False] = False) -> str: ...
@overload
def check_path(value: object, name: str, *, optional: bool) -> str | None: ...


def check_path(value: object, name: str, *, optional: bool = False) -> str | None:
    """``value`` as a ``str`` if it is a non-empty str or ``os.PathLike`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        expected = "a path (str or os.PathLike) or None" if optional else "a path (str or os.PathLike)"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if not os.fspath(value):
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return str(os.fspath(value))


def all_finite(t: Tensor) -> bool:
    """Whether every entry of the float tensor ``t`` is finite. The sum is finite unless an entry
    is NaN / inf or the sum overflows, so the elementwise check (about 1000x slower on CPU)
    runs only then."""
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def check_device(value: object, name: str = "device") -> torch.device:
    """``value`` as a ``torch.device`` if it is one, or a string naming one (``"cpu"``, ``"cuda:1"``)."""
    if isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a torch.device or a str such as 'cpu' or 'cuda', got {type(value).__name__} "
                        f"{value!r}")
    try:
        return torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name} must name a device such as 'cpu', 'cuda' or 'cuda:0', got {value!r}") from None


_KINDS = {
    "float": (lambda t: t.is_floating_point(), "a floating-point"),
    "int": (lambda t: not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool), "an integer"),
    "real": (lambda t: not (t.is_complex() or t.dtype == torch.bool), "an integer or real"),
}


def check_tensor(value: object, name: str, *, kind: str | None = None, dims: int | Sequence[int] | None = None,
                 finite: bool = False, shape: str = "") -> Tensor:
    """``value`` if it is a tensor of ``kind`` (``"float"``, ``"int"``, ``"real"``: int or float;
    ``None``: any dtype) with ``dims`` dimensions (one count or several), and only finite entries
    when ``finite``. ``shape`` is the expected shape as text for the messages (``"[N, D]"``).
    A wrong type or dtype raises ``TypeError``; a wrong rank or a non-finite entry ``ValueError``."""
    what = f" of shape {shape}" if shape else ""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a tensor{what}, got {type(value).__name__}")
    if kind is not None:
        ok, text = _KINDS[kind]
        if not ok(value):
            raise TypeError(f"{name} must be {text} tensor{what}, got dtype {value.dtype}")
    if dims is not None:
        allowed = (dims,) if isinstance(dims, int) else tuple(dims)
        if value.dim() not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s){what}, "
                             f"got shape {list(value.shape)}")
    if finite and value.is_floating_point() and not all_finite(value.detach()):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
    return value


def check_int_list(value: object, name: str, minimum: int = 0, maximum: int = MAX_INDEX) -> Tensor:
    """A 1-D int64 tensor from ``value``: a list / tuple of ints (not bools, not floats, even
    integer-valued ones: ``3.5`` must not become ``3``) or a 1-D integer tensor, every entry in
    ``[minimum, maximum]``."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name}[{i}] must be an int, got {type(v).__name__} {v!r}")
        bad = next(((i, v) for i, v in enumerate(value) if not minimum <= v <= maximum), None)
        if bad is not None:
            raise ValueError(f"{name}[{bad[0]}] must be in [{minimum}, {maximum}], got {bad[1]}")
        return torch.tensor([int(v) for v in value], dtype=torch.long).reshape(-1)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a list of ints or a 1-D integer tensor, got {type(value).__name__}")
    check_tensor(value, name, kind="int", dims=1, shape="[B]")
    if value.numel():
        lo, hi = int(value.min()), int(value.max())
        if lo < minimum or hi > maximum:
            raise ValueError(f"{name} must hold ints in [{minimum}, {maximum}], got {lo if lo < minimum else hi}")
    return value.long()


def check_module(value: object, name: str, expected: str, *, arguments: int | None = None,
                 optional: bool = True) -> nn.Module | None:
    """``value`` if it is an ``nn.Module`` instance (or ``None`` when ``optional``) whose
    ``forward`` takes ``arguments`` positional arguments (where given and its signature can be
    read). ``expected`` says what the module is for, e.g. ``"a score encoding: forward(q, k, pos)"``.
    A class instead of an instance, a function, or a module with another ``forward`` (an
    ``nn.Linear`` where an encoding belongs) is refused with ``TypeError``."""
    if value is None and optional:
        return None
    if not isinstance(value, nn.Module):
        hint = f" (the class itself: call it, e.g. {value.__name__}(...))" if isinstance(value, type) else ""
        raise TypeError(f"{name} must be {expected}{' or None' if optional else ''}, got "
                        f"{type(value).__name__}{hint}")
    if arguments is not None:
        try:
            inspect.signature(value.forward).bind(*range(arguments))
        except TypeError:
            raise TypeError(f"{name} must be {expected}, got {type(value).__name__} whose forward"
                            f"{inspect.signature(value.forward)} does not take {arguments} argument(s)") from None
        except ValueError:  # no readable signature (a builtin, a scripted module): trust it
            pass
    return value


def memory_budget(device: torch.device | str) -> int:
    """Bytes a single request may plan to allocate on ``device``: the ``GRAPHATTN_MEMORY_BUDGET``
    environment variable (bytes, or with a K / M / G / T suffix) if set, else the device's whole
    memory (a CUDA card's, the machine's RAM for the CPU)."""
    given = os.environ.get("GRAPHATTN_MEMORY_BUDGET", "").strip().upper()
    if given:
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(given[-1:], 1)
        try:
            return int(float(given.rstrip("KMGTB") or "x") * scale)
        except ValueError:
            raise ValueError(f"GRAPHATTN_MEMORY_BUDGET must be a number of bytes, optionally with K, M, G or T, "
                             f"got {given!r}") from None
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no up-front refusal
        return 1 << 62


def check_allocation(nbytes: int, what: str, device: torch.device | str, alternative: str) -> None:
    """Refuse, before anything is allocated, a request whose estimated memory ``nbytes`` exceeds
    :func:`memory_budget`, with the estimate and ``alternative`` (what to do instead)."""
    budget = memory_budget(device)
    if nbytes > budget:
        raise ValueError(f"{what} needs about {_bytes(nbytes)}, more than the {_bytes(budget)} this "
                         f"{torch.device(device).type} has (GRAPHATTN_MEMORY_BUDGET); {alternative}")


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
