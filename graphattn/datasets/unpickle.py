"""Unpickling data files with a restricted unpickler, after their sha256 matched.

A pickle can name any importable callable and make the reader call it; these readers resolve
only the few globals that numpy arrays (and scipy CSR matrices) need and refuse every other one
with an ``UnpicklingError`` naming it and the file. They are a second line behind the checksum:
the loaders hand them only bytes whose sha256 matched a value shipped in the package
(:func:`graphattn.datasets.fetch.read_verified`).
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["load_numpy_pickle", "load_npz_objects"]


def _reconstruct():
    try:  # numpy >= 2 keeps it in numpy._core; pickles written by numpy 1 name numpy.core
        from numpy._core.multiarray import _reconstruct as reconstruct
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core.multiarray import _reconstruct as reconstruct
    return reconstruct


def _globals(sparse: bool) -> dict[tuple[str, str], object]:
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct()
    if sparse:
        import scipy.sparse

        for module in ("scipy.sparse.csr", "scipy.sparse._csr"):
            allowed[(module, "csr_matrix")] = scipy.sparse.csr_matrix
    return allowed


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, what: str, sparse: bool):
        super().__init__(io.BytesIO(data))
        self.what, self.allowed = what, _globals(sparse)
        self.kinds = "numpy arrays and scipy CSR matrices" if sparse else "numpy arrays"

    def find_class(self, module: str, name: str):
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{self.what}: refuses to load {module}.{name}; only {self.kinds} may be unpickled")
        return found


def load_numpy_pickle(data: bytes, what: str) -> object:
    """Unpickle ``data`` (named ``what`` in errors), allowing only numpy arrays and dtypes.

    Raises:
        pickle.UnpicklingError: the pickle names any other global, or is malformed.
    """
    return _load(data, what, sparse=False)


def _load(data: bytes, what: str, sparse: bool) -> object:
    try:
        return _Restricted(data, what, sparse).load()
    except pickle.UnpicklingError:
        raise
    except Exception as err:  # a malformed pickle raises anything from EOFError to TypeError
        raise pickle.UnpicklingError(f"{what}: not a valid pickle of numpy arrays ({type(err).__name__}: {err})") from None


def load_npz_objects(data: bytes, what: str) -> dict[str, object]:
    """The arrays of an ``.npz`` archive, with object arrays (e.g. 0-d arrays holding scipy CSR
    matrices) unpickled by the restricted unpickler instead of ``np.load(allow_pickle=True)``.
    A 0-d object array is returned as the object it holds.

    Raises:
        pickle.UnpicklingError: a member names a global other than numpy's and scipy CSR's.
        ValueError: ``data`` is not an npz archive of ``.npy`` members.
    """
    out: dict[str, object] = {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise ValueError(f"{what}: not an npz archive ({err})") from None
    for member in archive.namelist():
        raw = archive.read(member)
        stream = io.BytesIO(raw)
        try:
            version = npy_format.read_magic(stream)
            header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = header(stream)
        except ValueError as err:
            raise ValueError(f"{what}: member {member} is not a .npy array ({err})") from None
        key = member.removesuffix(".npy")
        if not dtype.hasobject:
            out[key] = np.load(io.BytesIO(raw), allow_pickle=False)
            continue
        array = _load(stream.read(), f"{what}:{member}", sparse=True)
        if not isinstance(array, np.ndarray) or array.shape != shape:
            raise ValueError(f"{what}: member {member} holds {type(array).__name__}, not an array of shape {shape}")
        out[key] = array.item() if array.ndim == 0 else array
    return out
