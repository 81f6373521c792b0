"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The fused Triton kernel (graphattn.ops.fused) runs on CPU tensors only under Triton's interpreter,
# which triton picks when the kernels are defined, i.e. when graphattn is first imported: so it is
# set here, before any test module imports graphattn. Only where CUDA is missing (with CUDA the
# kernels compile for the GPU and their tests run there); TRITON_INTERPRET=0 in the environment
# keeps it off.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

#: Devices the kernel-vs-reference tests run on: the CPU, and CUDA where present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> str:
    """Each available device in turn (``DEVICES``); session-scoped so hypothesis tests may use it."""
    return request.param


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The read-only offline dataset mirror (``shared/datasets``); skips the test without it."""
    for candidate in (os.environ.get("GRAPHATTN_MIRROR"),
                      Path(__file__).resolve().parents[2] / "shared" / "datasets"):
        if candidate and (Path(candidate) / "SHA256SUMS").is_file():
            return Path(candidate)
    pytest.skip("offline dataset mirror not found; set GRAPHATTN_MIRROR to shared/datasets")


@pytest.fixture(scope="session")
def shared_data_root(tmp_path_factory) -> Path:
    """One writable data root for the whole session, so each dataset is copied only once."""
    return tmp_path_factory.mktemp("graphattn-data")


@pytest.fixture
def offline_data(mirror, shared_data_root, monkeypatch) -> Path:
    """Point ``GRAPHATTN_MIRROR`` at the mirror and ``GRAPHATTN_DATA`` at the session data root
    for one test; returns the data root."""
    monkeypatch.setenv("GRAPHATTN_MIRROR", str(mirror))
    monkeypatch.setenv("GRAPHATTN_DATA", str(shared_data_root))
    return shared_data_root


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny models are several times faster that way on a
    shared 2-core machine. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
