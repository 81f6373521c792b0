"""Compile every variant of the fused kernels for CUDA (sm_80, sm_90) with triton's own ptxas, no GPU
needed: what the interpreter cannot check (types, layouts, constexpr branches) fails here.

Run without ``TRITON_INTERPRET`` (the interpreter replaces the kernels' compiler):
``python tests/fused_ptx.py``; ``tests/test_fused.py`` runs it as a slow test. Exits 1 on a failure.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graphattn from this tree
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from graphattn.ops import fused_triton as kernels  # noqa: E402

#: Arguments by role: inputs and outputs in the input dtype, accumulators, indices.
DATA = {"q", "k", "v", "bias", "ekv", "out", "d_out", "dq", "dk", "dv", "d_bias", "d_ekv"}
ACC = {"lse", "part_out", "part_lse", "delta", "part_dq", "part_dk", "part_dv", "part"}
INDEX = {"col", "perm", "t_col", "t_perm", "node_ptr", "start_ptr", "end_ptr", "slot_ptr", "split_node", "split_ptr"}
FLOATS = {"scale", "dropout"}
NAMES = {"fp16": tl.float16, "bf16": tl.bfloat16, "fp32": tl.float32, "fp64": tl.float64}


def signature(fn, dtype: str, constexprs: dict) -> dict:
    acc = "fp64" if dtype == "fp64" else "fp32"
    out = {}
    for name in fn.arg_names:
        if name in constexprs:
            out[name] = "constexpr"
        elif name in DATA:
            out[name] = f"*{dtype}"
        elif name in ACC:
            out[name] = f"*{acc}"
        elif name in INDEX:
            out[name] = "*i32"
        elif name == "seed_ptr":
            out[name] = "*i64"
        elif name == "keep":
            out[name] = "*i8"
        else:
            out[name] = "fp32" if name in FLOATS else "i32"
    return out


def variants(dtype: str):
    acc = tl.float64 if dtype == "fp64" else tl.float32
    tiles = {"BLOCK_H": 4, "BLOCK_C": 32, "BLOCK_CV": 32, "ACC": acc}
    for on, degree in itertools.product((False, True), (0, 5)):
        flags = {"HAS_BIAS": on, "HAS_EKV": on, "DROPOUT": on}
        yield kernels._forward_kernel, {**flags, "NEED_EID": on, "DEGREE": degree, "BLOCK_E": 8 if degree else 32, **tiles}
        yield kernels._dq_kernel, {**flags, "NEED_EID": on, "DEGREE": degree, "BLOCK_E": 8 if degree else 32, **tiles}
        if degree == 0:
            yield kernels._dkv_kernel, {**flags, "WRITE_DBIAS": on, "WRITE_DEKV": on, "BLOCK_E": 32, **tiles}
    yield kernels._merge_kernel, {"BLOCK_H": 4, "BLOCK_CV": 32, "ACC": acc}
    yield kernels._sum_slots_kernel, {"BLOCK_F": 128, "ACC": acc}


def main() -> int:
    warnings.simplefilter("ignore")
    failures, count, tic = [], 0, time.perf_counter()
    jobs = [(dtype, 90) for dtype in NAMES] + [("fp32", 80), ("bf16", 80)]
    for dtype, arch in jobs:
        for fn, constexprs in variants(dtype):
            count += 1
            try:
                src = ASTSource(fn, signature(fn, dtype, constexprs), constexprs=constexprs)
                compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": 4})
                assert "cubin" in compiled.asm
            except Exception as error:  # noqa: BLE001 - report every failing variant, not only the first
                failures.append(f"{fn.__name__} {dtype} sm_{arch} {constexprs}: {type(error).__name__}: {error}")
    fn, keep = kernels._keep_mask_kernel, {"BLOCK_E": 64, "BLOCK_H": 4}
    triton.compile(ASTSource(fn, signature(fn, "fp32", keep), constexprs=keep), target=GPUTarget("cuda", 90, 32))
    print(f"{count + 1} kernel variants compiled for CUDA in {time.perf_counter() - tic:.0f} s; {len(failures)} failed")
    print("\n".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
