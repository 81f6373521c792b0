"""The prepared device benchmark (issue 14): graphattn on CUDA against FlexAttention, SDPA and PyG.

fp32, d_model 256 (4 heads x 64 channels) for sequences, 128 (4 x 32) for the graph; one
process; each cell is the median of ``--runs`` timed calls after one warm-up (the warm-up
holds torch.compile's first compile, reported apart as ``first_s``). Peak memory is
``torch.cuda.max_memory_allocated`` during the timed calls, inputs and weights included.

* sequences: ``Window(128)``, ``longformer(128, [0, 1])``, ``bigbird(64, [0], 3)`` at n = 16k
  and 64k, forward and forward + backward, for
  ``graphattn`` (``SelfAttentionConv``, backend ``auto``: ``flex`` on CUDA, projections
  included; its ``AttentionGraph`` built once, its build time reported as ``prepare_s``),
  ``flex`` (``torch.compile(flex_attention)`` alone on ready q, k, v with graphattn's
  ``BlockMask``: the same mask), ``sdpa_dense_mask`` (one SDPA call with the ``[n, n]``
  boolean mask) and ``pyg_transformer`` (``TransformerConv`` on the pattern's ``edge_index``);
* a Barabasi-Albert graph, 1M nodes, m = 5 (10M directed edges): ``graphattn`` (``auto``)
  against PyG ``TransformerConv`` and ``GATConv``.

A cell that runs out of memory says ``oom``; cells not reached within ``--budget`` seconds say
``skipped: time budget`` (the whole run stays under 5 minutes). Writes JSON (``--out``) and
prints a table.

    bash benchmarks/gpu.sh                      # on a CUDA machine
    python benchmarks/gpu.py --dry-run          # tiny sizes on the CPU: checks the script, measures nothing
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from graphattn import ops
from graphattn.nn import SelfAttentionConv
from graphattn.ops import AttentionGraph
from graphattn.ops.flex import FLEX_BLOCK, plan_flex
from graphattn.patterns import Window, bigbird, longformer

NO_CUDA = ("benchmarks/gpu.py measures on CUDA, and torch.cuda.is_available() is False here; "
           "run it on a machine with an NVIDIA GPU, or use --dry-run for a tiny CPU check of the script")


def sizes(dry: bool) -> dict:
    if dry:
        return {"patterns": {"Window(8)": Window(8), "longformer(8, [0, 1])": longformer(8, [0, 1]),
                             "bigbird(4, [0], 3)": bigbird(4, [0], 3)},
                "lengths": [512], "seq_dim": 32, "graph_nodes": 2000, "graph_m": 5, "graph_dim": 16}
    return {"patterns": {"Window(128)": Window(128), "longformer(128, [0, 1])": longformer(128, [0, 1]),
                         "bigbird(64, [0], 3)": bigbird(64, [0], 3)},
            "lengths": [16384, 65536], "seq_dim": 256, "graph_nodes": 1_000_000, "graph_m": 5, "graph_dim": 128}


HEADS = 4


def barabasi_albert(n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """``edge_index`` of a preferential-attachment graph, both directions (``2 (n - m) m`` edges).

    Each new node ``i >= m`` sends ``m`` edges; an edge picks a uniform earlier edge and, with
    probability 1/2, its source or its target: an endpoint chosen uniformly among all earlier
    edge endpoints, i.e. with probability proportional to degree (Barabasi-Albert). Targets
    that copy an earlier target are resolved by pointer jumping, so it is vectorised
    (PyG's ``barabasi_albert_graph`` loops in Python, O(n^2) at 1M nodes)."""
    src = torch.arange(m, n).repeat_interleave(m)  # (E,)
    earlier = (src - m) * m  # edges of earlier new nodes
    pick = (torch.rand(src.numel(), generator=generator) * earlier).long()
    first = earlier == 0  # the first new node attaches to the m seed nodes
    take_source = torch.rand(src.numel(), generator=generator) < 0.5
    value = torch.where(first, torch.randint(m, src.shape, generator=generator), src[pick])
    pointer = torch.where(first | take_source, -1, pick)
    while bool((pointer >= 0).any()):  # pointer jumping: value[e] = value[pointer[e]] once that is known
        live = pointer >= 0
        p = pointer[live]
        done = pointer[p] < 0
        idx = live.nonzero().flatten()
        value[idx[done]] = value[p[done]]
        pointer[idx[done]] = -1
        pointer[idx[~done]] = pointer[p[~done]]
    return torch.cat([torch.stack([src, value]), torch.stack([value, src])], dim=1)


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
    plan = graph.cached(("flex", str(device), FLEX_BLOCK), lambda: plan_flex(graph, FLEX_BLOCK))  # what flex reads
    prepare = time.perf_counter() - tic
    conv = SelfAttentionConv(dim, dim, heads=HEADS).to(device)
    cuda = device.type == "cuda"
    qkv = [torch.randn(1, HEADS, n, channels, device=device, requires_grad=cuda) for _ in range(3)]
    flex = compiled_flex() if cuda else flex_attention  # CPU: no backward, so no grad
    methods = {"graphattn": (lambda: conv(x, graph), True),
               "flex": (lambda: flex(*qkv, block_mask=plan.block_mask), cuda)}

    dense_qkv = [t.detach().requires_grad_() for t in qkv]

    def sdpa() -> torch.Tensor:
        mask = graph.cached("bench_dense_mask", lambda: pattern.dense_mask(n, device=device))
        return F.scaled_dot_product_attention(*dense_qkv, attn_mask=mask)
    methods["sdpa_dense_mask"] = (sdpa, True)

    from torch_geometric.nn import TransformerConv

    pyg = TransformerConv(dim, channels, heads=HEADS).to(device)
    edge_index = graph.edge_index
    methods["pyg_transformer"] = (lambda: pyg(x, edge_index), True)
    return {"methods": methods, "backend": backend, "prepare_s": round(prepare, 3), "edges": graph.num_edges}


def graph_methods(n: int, m: int, dim: int, device: torch.device) -> dict:
    from torch_geometric.nn import GATConv, TransformerConv

    edge_index = barabasi_albert(n, m, torch.Generator().manual_seed(0)).to(device)
    x = torch.randn(n, dim, device=device, requires_grad=True)
    channels = dim // HEADS
    tic = time.perf_counter()
    graph = AttentionGraph.build(edge_index, n)
    backend = ops.choose_backend(graph, device=device)
    graph.csr()
    prepare = time.perf_counter() - tic
    conv = SelfAttentionConv(dim, dim, heads=HEADS).to(device)
    transformer = TransformerConv(dim, channels, heads=HEADS).to(device)
    gat = GATConv(dim, channels, heads=HEADS, add_self_loops=False).to(device)
    methods = {"graphattn": (lambda: conv(x, graph), True),
               "pyg_transformer": (lambda: transformer(x, edge_index), True),
               "pyg_gat": (lambda: gat(x, edge_index), True)}
    return {"methods": methods, "backend": backend, "prepare_s": round(prepare, 3), "edges": int(edge_index.size(1))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: check the script, measure nothing")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per cell (median)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds; cells after it are skipped")
    parser.add_argument("--out", default="benchmarks/gpu.json", help="JSON output")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    cfg = sizes(args.dry_run)
    start = time.perf_counter()
    rows: list[dict] = []

    def measure(task: str, n: int, build: Callable[[], dict]) -> None:
        if time.perf_counter() - start > args.budget:
            rows.append({"task": task, "n": n, "status": "skipped: time budget"})
            return
        try:
            setup = build()
        except torch.OutOfMemoryError:
            rows.append({"task": task, "n": n, "status": "oom (setup)"})
            return
        for name, (forward, has_backward) in setup["methods"].items():
            for mode in ("fwd", "fwd+bwd"):
                row = {"task": task, "n": n, "edges": setup["edges"], "method": name, "mode": mode,
                       "backend": setup["backend"] if name == "graphattn" else None}
                if time.perf_counter() - start > args.budget:
                    row["status"] = "skipped: time budget"
                elif mode == "fwd+bwd" and not has_backward:
                    row["status"] = "n/a: no backward on this device"
                else:
                    row.update(timed(step(forward, mode == "fwd+bwd"), args.runs, device))
                    if name == "graphattn":
                        row["prepare_s"] = setup["prepare_s"]
                rows.append(row)
                print(_line(row), flush=True)
        del setup
        if device.type == "cuda":
            torch.cuda.empty_cache()

    order = [(name, n) for n in cfg["lengths"][:1] for name in cfg["patterns"]]
    later = [(name, n) for n in cfg["lengths"][1:] for name in cfg["patterns"]]
    for name, n in order:  # 16k first, then the graph, then 64k: what matters most fits the budget
        measure(name, n, partial(sequence_methods, cfg["patterns"][name], n, cfg["seq_dim"], device))
    measure("barabasi_albert(m=5)", cfg["graph_nodes"],
            partial(graph_methods, cfg["graph_nodes"], cfg["graph_m"], cfg["graph_dim"], device))
    for name, n in later:
        measure(name, n, partial(sequence_methods, cfg["patterns"][name], n, cfg["seq_dim"], device))
    env = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "dry_run": args.dry_run, "runs": args.runs,
           "seconds": round(time.perf_counter() - start, 1)}
    with open(args.out, "w") as f:
        json.dump({"env": env, "rows": rows}, f, indent=1)
    print(f"\n{env}\nwrote {args.out}")
    return 0


def _line(row: dict) -> str:
    what = row.get("status") if row.get("status") != "ok" else (
        f"{row['median_ms']:10.2f} ms  peak {row['peak_mib'] if row['peak_mib'] is not None else '-':>9} MiB  "
        f"first {row['first_s']:.1f} s")
    backend = f" ({row['backend']})" if row.get("backend") else ""
    return f"{row['task']:<26} n={row['n']:<8} {row['mode']:<8} {row['method'] + backend:<26} {what}"


if __name__ == "__main__":
    sys.exit(main())
