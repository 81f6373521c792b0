"""Issue 26's cost target: what linear global attention beside local message passing costs per
training epoch, against the local-only twin, on the synthetic SBM graphs in mini-batches.

    python benchmarks/local_global.py                              # SBM-1M, batches of 10,000 nodes
    python benchmarks/local_global.py --datasets SBM-100k --repeats 3

Models: ``local-only`` (``LocalGlobalNetwork(global_branch=False)``: GCN, residual, LayerNorm),
``local-global`` (the same with sigmoid linear attention over the batch's nodes in every layer)
and ``local-global:1`` (that branch in the first layer only, SGFormer's single global layer).
Each measurement is one training epoch (``train_epoch`` alone: no evaluation, no data set-up)
after an untimed warm-up epoch, in a fresh process (``scale.measure``); the models alternate,
``--repeats`` rounds, and the table gives the median epoch, the ratio to the local-only median
of the same run, and the peak resident set. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import launch  # noqa: E402  (the measurement in a fresh process)

MODELS = {"local-only": ("local-only", None), "local-global": ("local-global", None),
          "local-global:1": ("local-global", 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["SBM-1M"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--root", help="data root (default: graphattn's)")
    args = parser.parse_args(argv)

    from graphattn.datasets import load_sbm

    print("| graph | batch | model | epoch (s), median | ratio to local-only | repeats (s) | peak RSS (MiB) "
          "| load avg |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.datasets:
        load_sbm(dataset, root=args.root)  # generated and verified once, outside the measurements
        runs: dict[str, list[dict]] = {m: [] for m in args.models}
        for _ in range(args.repeats):
            for name in args.models:
                model, global_layers = MODELS[name]
                spec = {"dataset": dataset, "loader": "random", "batch_size": args.batch_size, "model": model,
                        "global_layers": global_layers, "num_neighbors": None, "hidden": args.hidden,
                        "heads": args.heads, "root": args.root, "warmup": True, "threads": None}
                result = launch(spec, 1, args.timeout)
                if "failed" in result:
                    raise SystemExit(f"{dataset} {name}: {result['failed']}")
                runs[name].append(result)
                print(f"  {dataset} {name}: {result['epoch_s']:.2f} s", file=sys.stderr, flush=True)
        medians = {m: statistics.median(r["epoch_s"] for r in rs) for m, rs in runs.items()}
        base = medians.get("local-only")
        for name, rs in runs.items():
            ratio = f"{medians[name] / base:.2f}x" if base else "-"
            seconds = " / ".join(f"{r['epoch_s']:.2f}" for r in rs)
            load = max(r["load_avg_1min"] for r in rs)
            print(f"| {dataset} | {args.batch_size:,} | {name} | {medians[name]:.2f} | {ratio} | {seconds} "
                  f"| {max(r['peak_rss_mb'] for r in rs):,.0f} | {load:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
