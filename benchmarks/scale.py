"""Scale-out benchmark (issue 13): one training epoch on the synthetic SBM graphs, mini-batches vs full batch,
one process vs several, and the accuracy of graphattn's ``graph`` model against PyG's GCN and GAT.

    python benchmarks/scale.py                       # the whole benchmark (see RESULTS.md)
    python benchmarks/scale.py --tiny                # smoke test: SBM-10k, small batches, 1 accuracy epoch
    python benchmarks/scale.py --no-accuracy --datasets SBM-1M --loaders random --processes 1

Every measurement runs in a fresh process (``torchrun`` for P > 1), so its peak resident set
(``ru_maxrss``, the whole process: Python, torch, the graph, the epoch) is its own; with P
processes the largest and the sum over them are reported. Throughput is the training targets
of the epoch (every training node once) per second of ``train_epoch()`` alone, without data
loading or evaluation, after one untimed warm-up epoch (``--no-warmup``: the first epoch); the
graph's cache is generated before any measurement. One process uses torch's default threads,
each of P processes one thread (torchrun's default), so the columns say processes x threads. A measurement
whose process dies (e.g. killed for memory) is reported as not fitting, with its exit code.

The accuracy table trains each model with the same loader and batch size, ``--accuracy-epochs``
epochs with early stopping, one seed, through ``graphattn node`` itself (``run``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def measure(spec: dict) -> dict:
    """One training epoch of ``spec`` in this process (a rank of torchrun when WORLD_SIZE > 1)."""
    import torch

    from graphattn.experiments.harness import train_epoch
    from graphattn.experiments.node_batches import NodeBatches, check_loader
    from graphattn.experiments.node_classification import NODE
    from graphattn.experiments.node_config import NodeConfig
    from graphattn.experiments.node_data import NodeData
    from graphattn.experiments.node_models import build
    from graphattn.train import all_reduce_sum, init_distributed, is_main, rank, world_size

    options = {"batch_size": spec["batch_size"]} if spec["loader"] != "full" else {}
    if spec["loader"] == "neighbor":
        options["num_neighbors"] = tuple(spec["num_neighbors"])
    if spec.get("global_layers"):  # local-global with its global branch in the first layers only
        options["global_layers"] = spec["global_layers"]
    config = NodeConfig.from_options(dataset=spec["dataset"], models=(spec["model"],), loader=spec["loader"],
                                     seeds=1, epochs=1, progress=False, root=spec["root"], hidden=spec["hidden"],
                                     heads=spec["heads"], **options)
    init_distributed("cpu", 600)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    check_loader(config)
    task = NodeData(config)
    run = build(spec["model"], task, config, 0)
    model = run.model
    if world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(run.model)
    optimizer = run.optimization.build(run.model)
    batches = NodeBatches(task, config, 0, ("train",), train=True, model=run.model)

    def epoch() -> float:
        return train_epoch(model, optimizer, batches, NODE.objective.loss, device=torch.device("cpu"),
                           augment=run.augment)

    batches.set_epoch(1)
    run.model.train()
    if spec["warmup"]:  # first calls pay for lazy set-up (thread pools, kernels' caches): not the steady state
        batches.set_epoch(0)
        epoch()
        batches.set_epoch(1)
    all_reduce_sum([0.0])  # start together
    tic = time.perf_counter()
    loss = epoch()
    seconds = time.perf_counter() - tic
    peaks = [0.0] * world_size()
    peaks[rank()] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB
    peaks = all_reduce_sum(peaks)
    targets = int(task.masks["train"].sum())
    result = {**spec, "processes": world_size(), "epoch_s": seconds, "targets_per_s": targets / seconds,
              "peak_rss_mb": max(peaks), "peak_rss_sum_mb": sum(peaks), "loss": loss, "threads": torch.get_num_threads(),
              "load_avg_1min": os.getloadavg()[0]}
    if is_main():
        print("RESULT " + json.dumps(result), flush=True)
    return result


def launch(spec: dict, processes: int, timeout: float) -> dict:
    """``measure(spec)`` in a fresh process, or in ``processes`` of them under torchrun."""
    args = [str(HERE), "--measure", json.dumps(spec)]
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "processes": processes, "failed": f"over {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
    return {**spec, "processes": processes, "failed": f"exit code {done.returncode}: {tail}"}


def accuracy(dataset: str, loader: str, batch_size: int, models: list[str], epochs: int, root: str | None,
             num_neighbors: list[int]) -> list[dict]:
    from graphattn.experiments.node_classification import run
    from graphattn.experiments.node_config import NodeConfig

    options = {"num_neighbors": tuple(num_neighbors)} if loader == "neighbor" else {}
    config = NodeConfig.from_options(dataset=dataset, models=tuple(models), loader=loader, batch_size=batch_size,
                                     seeds=1, epochs=epochs, patience=max(2, epochs // 4), progress=False, root=root,
                                     out=os.path.join(os.environ.get("TMPDIR", "/tmp"), f"scale-{dataset}"), **options)
    tic = time.perf_counter()
    metrics = run(config)
    wall = time.perf_counter() - tic
    return [{**r, "dataset": dataset, "loader": loader, "batch_size": batch_size, "wall_s": wall}
            for r in metrics["runs"]]


def table(rows: list[dict]) -> str:
    lines = ["| graph | loader | batch | model | processes x threads | epoch (s) | targets / s "
             "| peak RSS (MiB) max / sum | load avg |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        batch = r["batch_size"] if r["loader"] != "full" else "all"
        if "failed" in r:
            lines.append(f"| {r['dataset']} | {r['loader']} | {batch} | {r['model']} | {r['processes']} "
                         f"| did not fit / run: {r['failed']} | | | |")
            continue
        lines.append(f"| {r['dataset']} | {r['loader']} | {batch} | {r['model']} | {r['processes']} x {r['threads']} | "
                     f"{r['epoch_s']:.2f} | {r['targets_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} / "
                     f"{r['peak_rss_sum_mb']:,.0f} | {r['load_avg_1min']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="smoke test on SBM-10k with small batches")
    parser.add_argument("--datasets", nargs="+", default=["SBM-100k", "SBM-1M"])
    parser.add_argument("--loaders", nargs="+", default=["full", "random", "neighbor"])
    parser.add_argument("--models", nargs="+", default=["graph"], help="models timed (accuracy: graph, gcn, gat)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--num-neighbors", type=int, nargs="+", default=[10, 10])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--threads", type=int, help="torch threads of every process (default: torch's for one "
                        "process, 1 each under torchrun); --threads 1 compares 1 x 1 with 2 x 1")
    parser.add_argument("--no-warmup", action="store_true", help="time the first epoch (with its set-up costs)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--accuracy-epochs", type=int, default=20)
    parser.add_argument("--root", help="data root (default: graphattn's)")
    parser.add_argument("--json", help="also write every row to this file")
    args = parser.parse_args(argv)
    if args.measure:
        measure(json.loads(args.measure))
        return 0
    if args.tiny:
        args.datasets, args.batch_size, args.accuracy_epochs, args.hidden = ["SBM-10k"], 1024, 1, 8
        args.num_neighbors, args.heads = [5, 5], 2

    from graphattn.datasets import load_sbm

    for dataset in args.datasets:  # generate (and verify) each cache once, outside the measurements
        load_sbm(dataset, root=args.root)
    import torch_geometric.typing as pyg

    rows = []
    for dataset in args.datasets:
        for loader in args.loaders:
            if loader == "neighbor" and not (pyg.WITH_PYG_LIB or pyg.WITH_TORCH_SPARSE):
                print(f"skip {dataset} neighbor: needs torch-sparse or pyg-lib", file=sys.stderr)
                continue
            for model in args.models:
                for p in args.processes if loader != "full" else [1]:
                    spec = {"dataset": dataset, "loader": loader, "batch_size": args.batch_size, "model": model,
                            "num_neighbors": args.num_neighbors, "hidden": args.hidden, "heads": args.heads,
                            "root": args.root, "warmup": not args.no_warmup,
                            "threads": args.threads}
                    rows.append(launch(spec, p, args.timeout))
                    print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    scores = []
    if not args.no_accuracy:
        dataset = "SBM-10k" if args.tiny else "SBM-100k"
        for loader in [x for x in args.loaders if x != "full"]:
            if loader == "neighbor" and not (pyg.WITH_PYG_LIB or pyg.WITH_TORCH_SPARSE):
                continue
            scores += accuracy(dataset, loader, args.batch_size, ["graph", "gcn", "gat"], args.accuracy_epochs,
                               args.root, args.num_neighbors)
        print("\n| graph | loader | batch | model | test acc (%) | val acc (%) | epochs | time / epoch (s) |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in scores:
            print(f"| {r['dataset']} | {r['loader']} | {r['batch_size']} | {r['model']} | {100 * r['test_acc']:.1f} "
                  f"| {100 * r['val_acc']:.1f} | {r['epochs']} | {r['epoch_time_s']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"timing": rows, "accuracy": scores}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
