"""Speed and memory of graphattn's attention against the usual alternatives.

fp32, d_model 256, 4 heads x 64 channels, batch 1, CPU. For every (pattern, n, mode) the
methods run in one process, alternated within each round (noisy machines hit them alike);
the table gives the median of ``--runs`` rounds after a warm-up. Peak memory is measured
separately, one fresh process per configuration (growth of the peak RSS ``VmHWM`` during one call).

``layer`` rows include the projections (q, k, v and output); ``attn`` rows time the
attention alone on ready ``q, k, v``. GFLOP/s counts useful work only,
``4 E H C / t`` with ``E`` the pattern's edges (``max_edges``), next to a large-matmul
ceiling measured in the same run. HF Longformer / BigBird rows need ``transformers``
(optional, not a dependency of graphattn).

    python benchmarks/attention.py            # the full table (long on 2 cores)
    python benchmarks/attention.py --quick    # a short version (< 2 minutes)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from graphattn import ops
from graphattn.nn import SelfAttentionConv
from graphattn.patterns import Full, Stride, Window, bigbird, longformer

D, HEADS = 256, 4
C = D // HEADS
RADIUS = 128
#: Methods gathering per-edge rows (scatter, PyG) are skipped when about ``E x D x 16`` bytes
#: (measured: PyG needs 16.7 GB for Window(128) at n=16384) exceed this (twice that with backward).
GATHER_BUDGET = 18 << 30
#: A method whose warm-up call takes longer than this is timed over ``SLOW_RUNS`` rounds.
SLOW_SECONDS, SLOW_RUNS = 15.0, 3
#: Dense boolean masks (n^2) are skipped above this many elements (fwd; fwd+bwd a quarter).
DENSE_MASK_MAX = 16384**2

PATTERNS = {
    "Window(128)": lambda: Window(RADIUS),
    "longformer(128, 2 global)": lambda: longformer(RADIUS, (0, 1)),
    "bigbird(64, 1 global, 3 random)": lambda: bigbird(64, (0,), 3),
    "Stride(64)": lambda: Stride(64),
    "Full()": lambda: Full(),
}


def chunked_window(q, k, v, radius: int = RADIUS, block: int = 64):
    """The plain chunked reference: 64-query blocks, each with the key span around it, one
    SDPA call with a 4-D boolean mask. ``q, k, v``: ``(N, H, C)``, N a multiple of ``block``."""
    n, h, c = q.shape
    nb, span = n // block, block + 2 * radius
    kb = F.pad(k, (0, 0, 0, 0, radius, radius)).unfold(0, span, block).permute(1, 0, 3, 2)  # (H, nb, S, C)
    vb = F.pad(v, (0, 0, 0, 0, radius, radius)).unfold(0, span, block).permute(1, 0, 3, 2)
    qi = torch.arange(n).view(nb, block)
    ki = (torch.arange(nb) * block - radius)[:, None] + torch.arange(span)
    mask = ((ki[:, None, :] - qi[:, :, None]).abs() <= radius) & (ki[:, None, :] >= 0) & (ki[:, None, :] < n)
    out = F.scaled_dot_product_attention(q.view(nb, block, h, c).permute(2, 0, 1, 3), kb, vb, attn_mask=mask[None])
    return out.permute(1, 2, 0, 3).reshape(n, h, c)


class Projected(nn.Module):
    """q, k, v and output projections around an attention function on ``(N, H, C)``."""

    def __init__(self, attend: Callable):
        super().__init__()
        self.qkv, self.out, self.attend = nn.Linear(D, 3 * D), nn.Linear(D, D), attend

    def forward(self, x):
        q, k, v = self.qkv(x).view(x.size(0), 3, HEADS, C).unbind(1)  # (N, H, C) each
        return self.out(self.attend(q, k, v).reshape(x.size(0), D))


def sdpa_heads(mask=None):
    def attend(q, k, v):
        return F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                              attn_mask=mask).transpose(0, 1)
    return attend


def hf_longformer(n: int, global_tokens: int):
    from transformers import LongformerConfig
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    cfg = LongformerConfig(hidden_size=D, num_attention_heads=HEADS, attention_window=[2 * RADIUS],
                           attention_probs_dropout_prob=0.0)
    att = LongformerSelfAttention(cfg, 0)
    mask = torch.zeros(1, n)
    mask[:, :global_tokens] = 1
    kwargs = dict(attention_mask=mask, is_index_masked=mask < 0, is_index_global_attn=mask > 0,
                  is_global_attn=global_tokens > 0)
    return att, lambda x: att(x[None], **kwargs)[0][0]


def hf_bigbird(n: int):
    from transformers import BigBirdConfig
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    cfg = BigBirdConfig(hidden_size=D, num_attention_heads=HEADS, attention_type="block_sparse", block_size=64,
                        num_random_blocks=3, attention_probs_dropout_prob=0.0, max_position_embeddings=n)
    att = BigBirdBlockSparseAttention(cfg, seed=0)
    blocked = torch.ones(1, n // 64, 64)
    pad = torch.cat([blocked[:, 1:-3], blocked[:, 2:-2], blocked[:, 3:-1]], dim=2)  # as HF's band mask
    band = torch.einsum("blq,blk->blqk", blocked[:, 2:-2], pad).unsqueeze(1)
    kwargs = dict(band_mask=band, from_mask=torch.ones(1, 1, n, 1), to_mask=torch.ones(1, 1, 1, n),
                  from_blocked_mask=blocked, to_blocked_mask=blocked)
    return att, lambda x: att(x[None], **kwargs)[0][0]


def has_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def methods(pattern_name: str, n: int, backward: bool, quick: bool = False) -> dict[str, tuple[str, Callable[[], Callable]]]:
    """name -> (kind, builder); a builder returns ``f(x) -> out`` (layer) or ``f(q, k, v)`` (attn)."""
    pattern = PATTERNS[pattern_name]()
    edges = pattern.max_edges(n)
    gather_fits = edges * D * 16 * (2 if backward else 1) <= (GATHER_BUDGET if not quick else 1 << 30)
    dense_fits = n * n <= (DENSE_MASK_MAX // 16 if backward else DENSE_MASK_MAX) and (not quick or n <= 1024)
    out: dict[str, tuple[str, Callable]] = {}

    def layer(backend):
        return lambda: (lambda m: lambda x: m(x, pattern))(SelfAttentionConv(D, D, HEADS, backend=backend))

    out["graphattn auto"] = ("layer", layer("auto"))
    if gather_fits:
        out["graphattn scatter"] = ("layer", layer("scatter"))
        out["PyG TransformerConv"] = ("layer", lambda: _pyg(pattern, n))
    if isinstance(pattern, Full):
        out["nn.MultiheadAttention"] = ("layer", lambda: (lambda m: lambda x: m(x, x, x, need_weights=False)[0])(
            nn.MultiheadAttention(D, HEADS)))
        out["SDPA + projections"] = ("layer", lambda: Projected(sdpa_heads()))
    elif dense_fits:
        if n * n <= DENSE_MASK_MAX // 16:  # the attention-alone row below covers larger n
            out["SDPA dense bool mask + proj"] = ("layer", lambda: Projected(sdpa_heads(pattern.dense_mask(n))))
    if isinstance(pattern, Window):
        out["chunked SDPA + proj"] = ("layer", lambda: Projected(chunked_window))
        out["attn: graphattn auto"] = ("attn", lambda: lambda q, k, v: ops.attention(q, k, v, pattern).out)
        out["attn: chunked SDPA"] = ("attn", lambda: chunked_window)
        if dense_fits:
            out["attn: SDPA dense bool mask"] = ("attn", lambda: sdpa_heads(pattern.dense_mask(n)))
    if has_transformers() and pattern_name.startswith(("Window", "longformer")):
        out["HF Longformer self-attn"] = ("layer", lambda: hf_longformer(n, 0 if pattern_name.startswith("W") else 2)[1])
    if has_transformers() and pattern_name.startswith("bigbird") and n >= 1024:
        out["HF BigBird block-sparse"] = ("layer", lambda: hf_bigbird(n)[1])
    return out


def _pyg(pattern, n):
    from torch_geometric.nn import TransformerConv

    conv = TransformerConv(D, C, heads=HEADS)
    ei = pattern.edge_index(n)
    return lambda x: conv(x, ei)


def run_once(kind: str, fn: Callable, inputs, backward: bool) -> None:
    if backward:
        out = fn(*inputs)
        out.sum().backward()
    else:
        with torch.no_grad():
            fn(*inputs)


def make_inputs(kind: str, n: int, backward: bool):
    gen = torch.Generator().manual_seed(0)
    if kind == "layer":
        return (torch.randn(n, D, generator=gen).requires_grad_(backward),)
    return tuple(torch.randn(n, HEADS, C, generator=gen).requires_grad_(backward) for _ in range(3))


def matmul_ceiling(size: int = 2048, runs: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times) / 1e9


def time_config(pattern_name: str, n: int, backward: bool, runs: int, quick: bool, only=None) -> list[dict]:
    torch.manual_seed(0)
    built = {name: (kind, build()) for name, (kind, build) in methods(pattern_name, n, backward, quick).items()
             if only is None or name in only}
    inputs = {kind: make_inputs(kind, n, backward) for kind in ("layer", "attn")}
    times: dict[str, list[float]] = {name: [] for name in built}
    rounds = {}
    for name, (kind, fn) in built.items():  # warm-up
        t = time.perf_counter()
        run_once(kind, fn, inputs[kind], backward)
        rounds[name] = runs if time.perf_counter() - t < SLOW_SECONDS else min(runs, SLOW_RUNS)
    for r in range(runs):
        for name, (kind, fn) in built.items():
            if r >= rounds[name]:
                continue
            t = time.perf_counter()
            run_once(kind, fn, inputs[kind], backward)
            times[name].append(time.perf_counter() - t)
    edges = PATTERNS[pattern_name]().max_edges(n)
    flops = 4 * edges * HEADS * C * (3.5 if backward else 1)  # backward: ~2.5x the forward matmuls
    return [dict(pattern=pattern_name, n=n, mode="fwd+bwd" if backward else "fwd", method=name, kind=kind, runs=rounds[name],
                 seconds=statistics.median(times[name]), gflops=flops / statistics.median(times[name]) / 1e9)
            for name, (kind, _) in built.items()]


def peak_memory(pattern_name: str, n: int, backward: bool, method: str) -> float | None:
    """Peak RSS growth (MB) of one call, in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-probe", json.dumps([pattern_name, n, backward, method, False])]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    try:
        return float(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def memory_probe(pattern_name: str, n: int, backward: bool, method: str, quick: bool) -> None:
    kind, build = methods(pattern_name, n, backward, quick)[method]
    fn = build()
    inputs = make_inputs(kind, n, backward)
    # ru_maxrss survives exec (a big parent would hide the child's peak): reset the high-water mark.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kb("VmRSS")
    run_once(kind, fn, inputs, backward)
    print((_status_kb("VmHWM") - before) / 1024)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{model}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Window at n in {1024, 4096}, Full at 1024, 3 rounds, no memory")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", help="override the n values")
    parser.add_argument("--patterns", nargs="*", choices=sorted(PATTERNS), help="override the patterns")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-methods", nargs="*", help="measure peak memory only for these methods")
    parser.add_argument("--methods", nargs="*", help="time only these methods")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        memory_probe(*json.loads(args.memory_probe))
        return 0
    sizes = args.sizes or ([1024, 4096] if args.quick else [1024, 4096, 16384, 65536])
    names = args.patterns or (["Window(128)", "Full()"] if args.quick else list(PATTERNS))
    runs = 3 if args.quick and args.runs == 5 else args.runs
    print(f"machine: {machine()}")
    print(f"matmul ceiling (2048^2 fp32): {matmul_ceiling():.1f} GFLOP/s")
    print(f"transformers (HF baselines): {'yes' if has_transformers() else 'not installed, rows skipped'}")
    print("| pattern | n | mode | method | median s (runs) | useful GFLOP/s | peak MB |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in names:
        for n in sizes:
            if name == "Full()" and n > (1024 if args.quick else 4096):
                continue  # Full: n^2 work, minutes per run on 2 cores; small n: Window shows it
            for backward in (False, True):
                if n >= 65536 and backward and name != "Window(128)":
                    continue
                for row in time_config(name, n, backward, runs, args.quick, args.methods):
                    want_memory = not args.no_memory and not args.quick and (name.startswith("Window") or n == 16384)
                    want_memory &= args.memory_methods is None or row["method"] in args.memory_methods
                    row["peak_mb"] = peak_memory(name, n, backward, row["method"]) if want_memory else None
                    rows.append(row)
                    mem = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
                    print(f"| {name} | {n} | {row['mode']} | {row['method']} | {row['seconds']:.4f} | "
                          f"{row['gflops']:.1f} | {mem} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
