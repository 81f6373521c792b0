"""Smoke test of an installed graphattn, run by .ci/run inside a fresh virtual environment into
which only the built wheel was installed: the package imports from there (not from a source
tree), carries its version and its type marker, runs one forward, and its command answers."""

import importlib.metadata
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

import graphattn
from graphattn.models import GraphTransformer
from graphattn.patterns import longformer

site = Path(sysconfig.get_paths()["purelib"]).resolve()
where = Path(graphattn.__file__).resolve()
assert where.is_relative_to(site), f"graphattn imported from {where}, not from the environment's {site}"
assert graphattn.__version__ == importlib.metadata.version("graphattn") != "0.0.0+unknown", graphattn.__version__
assert (where.parent / "py.typed").exists(), "py.typed missing from the wheel"
assert list(where.parent.joinpath("datasets").glob("*.tsv")), "the datasets' catalogue files are missing from the wheel"

torch.manual_seed(0)
model = GraphTransformer(16, 32, 3, num_layers=2, heads=4, pattern=longformer(2, [0]), pooling="mean")
logits = model(torch.randn(10, 16), batch=torch.tensor([0] * 4 + [1] * 6))
assert logits.shape == (2, 3) and torch.isfinite(logits).all()

script = Path(sys.executable).with_name("graphattn")
help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
assert "node" in help_text and "study" in help_text, help_text
print(f"graphattn {graphattn.__version__} from {where.parent}: import, forward {tuple(logits.shape)}, --help: ok")
