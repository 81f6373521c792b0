"""The prepared device benchmark (issues 14 and 23): graphattn on CUDA against FlexAttention, SDPA and PyG.

d_model 256 (4 heads x 64 channels) for sequences, 128 (4 x 32) for graphs; one process; each
cell is the median of ``--runs`` timed calls after one warm-up (the warm-up holds
torch.compile's first compile, reported apart as ``first_s``). Peak memory is
``torch.cuda.max_memory_allocated`` during the timed calls, inputs and weights included.

* graphs (``benchmarks/gpu_graphs.py``): Barabasi-Albert (m = 5) and a stochastic block model,
  1M and 100k nodes (~10 edges per node), fp32 and bf16, forward and forward + backward:
  ``fused`` (the Triton kernel, ``graphattn.ops.fused``), ``sparse`` (cuSPARSE SDDMM / SpMM),
  PyG ``TransformerConv`` and ``GATConv``, eager and ``torch.compile``d; then a summary of the
  fused kernel's speed-ups and memory against each (the targets of issue 23);
* sequences: ``Window(128)``, ``longformer(128, [0, 1])``, ``bigbird(64, [0], 3)`` at n = 16k
  and 64k, fp32, forward and forward + backward, for
  ``graphattn`` (``SelfAttentionConv``, backend ``auto``: ``flex`` on CUDA, projections
  included; its ``AttentionGraph`` built once, its build time reported as ``prepare_s``),
  ``flex`` (``torch.compile(flex_attention)`` alone on ready q, k, v with graphattn's
  ``BlockMask``: the same mask), ``sdpa_dense_mask`` (one SDPA call with the ``[n, n]``
  boolean mask) and ``pyg_transformer`` (``TransformerConv`` on the pattern's ``edge_index``).

Cells run most important first (1M-node graphs in fp32, sequences at 16k, 1M-node graphs in
bf16, 100k-node graphs, sequences at 64k). A cell that runs out of memory says ``oom``, one that
fails says ``error: ...``; cells not reached within ``--budget`` seconds say ``skipped: time
budget`` (the whole run stays under 5 minutes). Writes JSON (``--out``) and prints a table.

    bash benchmarks/gpu.sh                      # on a CUDA machine
    bash benchmarks/gpu.sh --dry-run            # tiny sizes on the CPU, the fused kernel under
                                                # Triton's interpreter: checks the script, measures nothing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

if "--dry-run" in sys.argv[1:]:  # the fused kernel on CPU tensors: triton reads this when graphattn defines it
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from gpu_graphs import graph_methods, summary  # noqa: E402
from torch.nn.attention.flex_attention import flex_attention  # noqa: E402

from graphattn import ops  # noqa: E402
from graphattn.nn import SelfAttentionConv  # noqa: E402
from graphattn.ops import AttentionGraph  # noqa: E402
from graphattn.patterns import Window, bigbird, longformer  # noqa: E402

NO_CUDA = ("benchmarks/gpu.py measures on CUDA, and torch.cuda.is_available() is False here; "
           "run it on a machine with an NVIDIA GPU, or use --dry-run for a tiny CPU check of the script")


def sizes(dry: bool) -> dict:
    if dry:
        return {"patterns": {"Window(8)": Window(8), "longformer(8, [0, 1])": longformer(8, [0, 1]),
                             "bigbird(4, [0], 3)": bigbird(4, [0], 3)},
                "lengths": [512], "seq_dim": 32, "graph_nodes": [24, 12], "graph_dim": 16, "compile": "aot_eager"}
    return {"patterns": {"Window(128)": Window(128), "longformer(128, [0, 1])": longformer(128, [0, 1]),
                         "bigbird(64, [0], 3)": bigbird(64, [0], 3)},
            "lengths": [16384, 65536], "seq_dim": 256, "graph_nodes": [1_000_000, 100_000], "graph_dim": 128,
            "compile": "inductor"}


HEADS = 4


def timed(fn: Callable[[], object], runs: int, device: torch.device) -> dict:
    """``first_s`` (warm-up, compile included), ``median_ms`` of ``runs`` calls, ``peak_mib``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        tic = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - tic
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(runs):
            tic = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - tic)
    except torch.OutOfMemoryError:
        return {"status": "oom"}
    except Exception as error:  # noqa: BLE001 - one failing cell must not end a run on a lent GPU
        return {"status": f"error: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"}
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"status": "ok", "first_s": round(first, 3), "median_ms": round(1e3 * statistics.median(times), 3),
            "peak_mib": None if peak is None else round(peak, 1)}


def step(forward: Callable[[], torch.Tensor], backward: bool) -> Callable[[], None]:
    def run() -> None:
        if backward:
            forward().sum().backward()
        else:
            with torch.no_grad():
                forward()
    return run


def compiled_flex() -> Callable:
    """One ``torch.compile(flex_attention)`` for the whole run (its compiled graphs are reused)."""
    if "flex" not in _COMPILED:
        _COMPILED["flex"] = torch.compile(flex_attention)
    return _COMPILED["flex"]


_COMPILED: dict[str, Callable] = {}


def sequence_methods(pattern, n: int, dim: int, device: torch.device) -> dict:
    """name -> (forward builder, can run backward); builders share one set of inputs."""
    torch.manual_seed(0)
    channels = dim // HEADS
    x = torch.randn(n, dim, device=device, requires_grad=True)
    tic = time.perf_counter()
    graph = AttentionGraph.build(pattern, n).to(device)
    backend = ops.choose_backend(graph, device=device)
    plan = graph.plan(ops.KERNELS["flex"])  # what the flex kernel reads: its BlockMask, built once per graph
    prepare = time.perf_counter() - tic
    conv = SelfAttentionConv(dim, dim, heads=HEADS).to(device)
    cuda = device.type == "cuda"
    qkv = [torch.randn(1, HEADS, n, channels, device=device, requires_grad=cuda) for _ in range(3)]
    flex = compiled_flex() if cuda else flex_attention  # CPU: no backward, so no grad
    methods = {"graphattn": (lambda: conv(x, graph), True),
               "flex": (lambda: flex(*qkv, block_mask=plan.block_mask), cuda)}

    dense_qkv = [t.detach().requires_grad_() for t in qkv]

    dense_mask = []

    def sdpa() -> torch.Tensor:
        if not dense_mask:  # built once, as a prepared graph would
            dense_mask.append(pattern.dense_mask(n, device=device))
        return F.scaled_dot_product_attention(*dense_qkv, attn_mask=dense_mask[0])
    methods["sdpa_dense_mask"] = (sdpa, True)

    from torch_geometric.nn import TransformerConv

    pyg = TransformerConv(dim, channels, heads=HEADS).to(device)
    edge_index = graph.edge_index
    methods["pyg_transformer"] = (lambda: pyg(x, edge_index), True)
    return {"methods": methods, "backend": backend, "prepare_s": round(prepare, 3), "edges": graph.num_edges}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: check the script, measure nothing")
    parser.add_argument("--runs", type=int, default=None, help="timed calls per cell (median; default 3, 1 dry)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds; cells after it are skipped (default 270, none dry)")
    parser.add_argument("--out", default="benchmarks/gpu.json", help="JSON output")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    cfg = sizes(args.dry_run)
    args.runs = args.runs or (1 if args.dry_run else 3)
    args.budget = args.budget or (float("inf") if args.dry_run else 270.0)
    start = time.perf_counter()
    rows: list[dict] = []

    def measure(task: str, n: int, dtype: torch.dtype, build: Callable[[], dict]) -> None:
        where = {"task": task, "n": n, "dtype": str(dtype).removeprefix("torch.")}
        if time.perf_counter() - start > args.budget:
            rows.append({**where, "status": "skipped: time budget"})
            return
        try:
            setup = build()
        except torch.OutOfMemoryError:
            rows.append({**where, "status": "oom (setup)"})
            return
        for name in setup.get("unavailable", {}):
            rows.append({**where, "method": name, "status": f"n/a: {setup['unavailable'][name]}"})
            print(_line(rows[-1]), flush=True)
        for name, (forward, has_backward) in setup["methods"].items():
            for mode in ("fwd", "fwd+bwd"):
                row = {**where, "edges": setup["edges"], "method": name, "mode": mode,
                       "backend": setup.get("backend") if name == "graphattn" else None}
                if time.perf_counter() - start > args.budget:
                    row["status"] = "skipped: time budget"
                elif mode == "fwd+bwd" and not has_backward:
                    row["status"] = "n/a: no backward on this device"
                else:
                    row.update(timed(step(forward, mode == "fwd+bwd"), args.runs, device))
                    prepare = setup["prepare_s"]
                    if isinstance(prepare, dict) and name in prepare or name == "graphattn":
                        row["prepare_s"] = prepare[name] if isinstance(prepare, dict) else prepare
                rows.append(row)
                print(_line(row), flush=True)
        del setup
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def graphs(n: int, dtype: torch.dtype) -> None:
        for kind, task in (("ba", "barabasi_albert(m=5)"), ("sbm", "sbm(10 blocks)")):
            measure(task, n, dtype, partial(graph_methods, kind, n, cfg["graph_dim"], dtype, device, cfg["compile"]))

    def sequences(n: int) -> None:
        for name, pattern in cfg["patterns"].items():
            measure(name, n, torch.float32, partial(sequence_methods, pattern, n, cfg["seq_dim"], device))

    large, small = cfg["graph_nodes"]
    graphs(large, torch.float32)  # what matters most first: the targets of issue 23, then issue 14's
    sequences(cfg["lengths"][0])
    graphs(large, torch.bfloat16)
    graphs(small, torch.float32)
    graphs(small, torch.bfloat16)
    for n in cfg["lengths"][1:]:
        sequences(n)
    env = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "dry_run": args.dry_run, "runs": args.runs,
           "seconds": round(time.perf_counter() - start, 1)}
    fused = summary(rows)
    print("\nfused kernel, fwd+bwd: speed-up over each method, peak memory / TransformerConv's")
    for line in fused:
        print("  " + ", ".join(f"{key}={value}" for key, value in line.items()))
    with open(args.out, "w") as f:
        json.dump({"env": env, "rows": rows, "fused_summary": fused}, f, indent=1)
    print(f"\n{env}\nwrote {args.out}")
    return 0


def _line(row: dict) -> str:
    what = row.get("status") if row.get("status") != "ok" else (
        f"{row['median_ms']:10.2f} ms  peak {row['peak_mib'] if row['peak_mib'] is not None else '-':>9} MiB  "
        f"first {row['first_s']:.1f} s")
    backend = f" ({row['backend']})" if row.get("backend") else ""
    return (f"{row['task']:<24} n={row['n']:<8} {row.get('dtype', ''):<9} {row.get('mode', ''):<8} "
            f"{row.get('method', '') + backend:<26} {what}")


if __name__ == "__main__":
    sys.exit(main())
