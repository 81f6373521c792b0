"""Checkpoints: everything needed to continue a run bit for bit, written atomically with a sha256
trailer and verified before ``torch.load(..., weights_only=True)`` reads them.

A checkpoint that cannot be used (corrupt, truncated, not a checkpoint, another experiment's, or
written by another graphattn version) is refused with a one-line :class:`CheckpointError` that
names the file and says what to do; nothing is overwritten and no run silently starts again.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..checks import check_path
from ..files import CorruptFileError, check_output_file, read_checked, write_checked

__all__ = ["CheckpointError", "CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "load_checkpoint", "load_for_resume",
           "load_weights", "save_checkpoint", "check_writable"]

#: The layout written now; 1 had no checksum trailer.
CHECKPOINT_FORMAT = 2
#: What every checkpoint written by :func:`graphattn.train.fit` holds.
CHECKPOINT_KEYS = ("format", "experiment", "epoch", "model", "optimizer", "best_state", "best_value", "bad_epochs",
                   "history", "rng")
_ZIP = b"PK\x03\x04"  # torch.save's archive


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, truncated, not a checkpoint, another experiment's,
    or of another layout."""


def _recover(path: Path) -> str:
    return f"move {path.name} away (or delete it) and run without resume to start again, or restore a good copy"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` after checking its sha256 trailer (see :func:`graphattn.files.read_checked`)
    and that it holds what :func:`~graphattn.train.fit` writes; loaded with ``weights_only=True`` onto the CPU.

    Raises:
        CheckpointError: (a ``ValueError``) the file is missing, unreadable, truncated, corrupt, not
            a checkpoint, or of another layout; the one-line message names the file and how to recover.
    """
    path = Path(check_path(path, "checkpoint"))
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; run without resume to start from scratch")
    try:
        payload = read_checked(path, "checkpoint")
        ckpt = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except CorruptFileError as err:
        older = ""
        if "no checksum trailer" in str(err) and _starts_with(path, _ZIP):
            older = " (a torch archive without a trailer: written by an older graphattn, format 1, or cut short)"
        raise CheckpointError(f"{err}{older}; {_recover(path)}") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({err.strerror or err})") from None
    except Exception as err:  # the checksum matched, but torch cannot unpickle it: not a checkpoint of ours
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be loaded ({reason}); {_recover(path)}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a graphattn training checkpoint (missing "
                              f"{', '.join(missing)}); {_recover(path)}")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} has layout {ckpt['format']!r}, this graphattn reads "
                              f"{CHECKPOINT_FORMAT}; resume it with the version that wrote it, or {_recover(path)}")
    return ckpt


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def load_for_resume(path: Path, experiment: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path`` if it belongs to ``experiment``; never writes.

    Raises:
        CheckpointError: the file is missing or unusable (:func:`load_checkpoint`), or it stores
            another experiment (the differing keys are listed).
    """
    if not path.is_file():
        raise CheckpointError(f"resume=True but checkpoint={str(path)!r} does not exist; "
                              "pass resume=False to start from scratch")
    ckpt = load_checkpoint(path)
    stored = ckpt["experiment"]
    missing = object()
    differ = [f"{k}: checkpoint {stored.get(k, '<missing>')!r} != now {experiment.get(k, '<missing>')!r}"
              for k in sorted(set(stored) | set(experiment))
              if stored.get(k, missing) != experiment.get(k, missing)]
    if differ:
        raise CheckpointError(f"checkpoint={str(path)!r} belongs to another experiment ({'; '.join(differ)}); "
                              "nothing was overwritten")
    return ckpt


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str = "weights") -> None:
    """``module.load_state_dict(state)``, refusing in one line weights of another model layout
    (a model that changed between graphattn versions, or another model's checkpoint)."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        own, theirs = set(module.state_dict()), set(state)
        detail = "; ".join(part for part in (
            f"missing {', '.join(sorted(own - theirs)[:3])}" if own - theirs else "",
            f"unexpected {', '.join(sorted(theirs - own)[:3])}" if theirs - own else "",
        ) if part) or str(err).strip().splitlines()[-1][:160]
        raise CheckpointError(f"checkpoint {str(path)!r} holds {what} of another model layout ({detail}); it was "
                              f"written by another graphattn version or model: {_recover(path)}") from None


def check_writable(path: Path) -> None:
    """Fail before training, not after the first epoch, when the checkpoint cannot be written."""
    if path.is_dir():
        raise ValueError(f"checkpoint={str(path)!r} is a folder; expected a file path")
    check_output_file(path, "checkpoint")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise ValueError(f"checkpoint={str(path)!r}: folder {str(path.parent)!r} is not writable ({err})") from None


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then ``os.replace``: a crash leaves either
    the previous checkpoint or the new one, never a torn file. A sha256 trailer lets
    :func:`load_checkpoint` refuse a file changed or cut short later."""
    write_checked(path, lambda f: torch.save(obj, f), mode=0o600)
