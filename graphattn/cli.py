"""The ``graphattn`` command line: a thin argparse layer over the library.

Each command group is added by one small ``_add_<name>(subparsers)`` function that registers
its parser and sets ``func`` (a function ``args -> int``); list it in :data:`COMMANDS`.
``main(argv)`` returns the exit status: 0 on success, 2 on bad input (the message goes to
stderr), and never calls ``sys.exit`` itself.

    graphattn patterns list
    graphattn patterns show "longformer(radius=2, global_tokens=[0])" --n 32 --png longformer.png
    graphattn patterns gallery --n 32 --png docs/patterns.png
    graphattn node --dataset Cora --models graph gat --seeds 10 --out runs/node/Cora
    graphattn text --epochs 10 --out runs/text          (also: speech, image; --pattern, --limit)
    graphattn graph --add "VirtualNodes(1)" --folds 10 --out runs/mutag
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["main", "build_parser", "COMMANDS"]


class CommandError(Exception):
    """Bad input found by a command; ``main`` prints it and returns 2."""


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else ""


# patterns -----------------------------------------------------------------------------------

def _patterns_list(args: argparse.Namespace) -> int:
    from .patterns import PATTERNS

    width = max(len(name) for name in PATTERNS)
    for name, factory in PATTERNS.items():
        print(f"{name:<{width}}  {_first_line(factory)}")
    return 0


def _patterns_show(args: argparse.Namespace) -> int:
    from .patterns import parse_pattern
    from .patterns.base import TEXT_VIEW_MAX

    try:
        pattern = parse_pattern(args.pattern)
        edges = pattern.edge_index(args.n)
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    print(repr(pattern))
    print(f"n={args.n}  edges={edges.size(1)}  density={edges.size(1) / max(args.n, 1) ** 2:.1%}")
    if args.n <= TEXT_VIEW_MAX:
        print(pattern.to_text(args.n))
    else:
        print(f"(text view only for n <= {TEXT_VIEW_MAX}; use --png for a picture)")
    if args.png:
        from .viz import plot_pattern

        try:
            plot_pattern(pattern, args.n, path=args.png)
        except (TypeError, ValueError, OSError) as e:
            raise CommandError(f"cannot write {args.png}: {e}") from None
        print(f"wrote {args.png}")
    return 0


def _patterns_gallery(args: argparse.Namespace) -> int:
    from .viz import pattern_gallery

    try:
        pattern_gallery(args.n, path=args.png)
    except (TypeError, ValueError, OSError) as e:
        raise CommandError(f"cannot write {args.png}: {e}") from None
    print(f"wrote {args.png}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def _add_patterns(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("patterns", help="list and show attention patterns")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,show,gallery}")
    listing = sub.add_parser("list", help="the pattern names parse_pattern knows, with one line each")
    listing.set_defaults(func=_patterns_list)
    show = sub.add_parser("show", help="print a pattern's repr, edge count and text picture")
    show.add_argument("pattern", help='a pattern expression, e.g. "Window(2) | Global([0])"')
    show.add_argument("--n", type=_positive_int, default=32, help="number of nodes (default 32)")
    show.add_argument("--png", metavar="FILE", help="also write the adjacency picture to FILE")
    show.set_defaults(func=_patterns_show)
    gallery = sub.add_parser("gallery", help="draw full, local, stride, global, random, Longformer and BigBird side by side")
    gallery.add_argument("--n", type=_positive_int, default=32, help="number of nodes (default 32)")
    gallery.add_argument("--png", metavar="FILE", required=True, help="where to write the picture")
    gallery.set_defaults(func=_patterns_gallery)


# experiments: text, speech, image, graph ----------------------------------------------------

def _experiment_arguments(parser: argparse.ArgumentParser, model: str, training: str) -> None:
    # Unset options keep the config dataclass's defaults (argparse.SUPPRESS leaves them out).
    keep = argparse.SUPPRESS
    parser.add_argument("--hidden", type=_positive_int, default=keep, help=f"model width; {model}")
    parser.add_argument("--heads", type=_positive_int, default=keep, help="attention heads")
    parser.add_argument("--layers", type=_positive_int, default=keep, help="attention blocks")
    parser.add_argument("--dropout", type=float, default=keep, help="dropout on the residual branches")
    parser.add_argument("--epochs", type=_positive_int, default=keep, help=f"most epochs; {training}")
    parser.add_argument("--patience", type=_positive_int, default=keep, help="early-stopping patience (epochs)")
    parser.add_argument("--batch-size", type=_positive_int, default=keep)
    parser.add_argument("--lr", type=float, default=keep, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=keep)
    parser.add_argument("--seed", type=int, default=keep, help="seeds weights, splits and batch order (default 0)")
    parser.add_argument("--out", metavar="DIR", default=keep, help="write results.json and history.png here")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=keep, help="(default cpu)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=keep,
                        help="no progress bars")


def _run_experiment(args: argparse.Namespace, config_cls: type, run: Callable, **fixed: object) -> dict:
    from dataclasses import fields

    from .datasets import DatasetUnavailableError

    names = {f.name for f in fields(config_cls)}
    try:
        config = config_cls(**fixed, **{k: v for k, v in vars(args).items() if k in names})
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    try:
        return run(config)
    except DatasetUnavailableError as e:
        raise CommandError(str(e)) from None


def _print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {f'{value:.4f}' if isinstance(value, float) else value}")


def _sequence(args: argparse.Namespace) -> int:
    from .experiments.sequence_classification import SequenceConfig, run

    m = _run_experiment(args, SequenceConfig, run, task=args.command)
    _print_table([("task", f"{m['task']} ({m['dataset']})"), ("pattern", m["pattern"]),
                  ("pooling / position", f"{m['pooling']} / {m['position']}"),
                  ("train / val / test", f"{m['num_train']} / {m['num_val']} / {m['num_test']}"),
                  ("test_acc", m["test_acc"]), ("best_val_acc", m["best_val_acc"]),
                  ("epochs (best)", f"{m['epochs_run']} ({m['best_epoch']})"),
                  ("time/epoch (s)", m["time_per_epoch_s"]), ("peak memory (MB)", m["peak_memory_mb"]),
                  ("parameters", m["parameters"])] + ([("wrote", args.out)] if "out" in args else []))
    return 0


def _graph(args: argparse.Namespace) -> int:
    from .experiments.graph_classification import GraphConfig, run

    m = _run_experiment(args, GraphConfig, run)
    _print_table([("task", f"graph ({m['dataset']})"), ("pattern", m["pattern"]), ("encoding", m["encoding"]),
                  ("test_acc", f"{m['test_acc_mean']:.4f} +- {m['test_acc_std']:.4f} over {len(m['folds'])} folds"),
                  ("majority class", m["majority_baseline"]), ("epochs (mean)", m["epochs_run_mean"]),
                  ("time/epoch (s)", m["time_per_epoch_s"]), ("peak memory (MB)", m["peak_memory_mb"]),
                  ("parameters", m["parameters"])] + ([("wrote", args.out)] if "out" in args else []))
    return 0


def _add_experiments(subparsers: argparse._SubParsersAction) -> None:
    tasks = {"text": "TREC question type (6 classes); default pattern Window(2) | Global([0]), <cls> pooling",
             "speech": "FSDD spoken digit (10 classes) over log-mel frames; default Window(left=8, right=0)",
             "image": "MNIST digit (10 classes) over 4x4 patches (7x7 grid); default Full(), try Grid2D(2, 7)"}
    for task, what in tasks.items():
        parser = subparsers.add_parser(task, help=f"train and test: {what}", description=f"Classify: {what}.")
        parser.add_argument("--pattern", default=argparse.SUPPRESS, help='attention pattern, e.g. "Window(4)"')
        parser.add_argument("--pooling", choices=("cls", "mean"), default=argparse.SUPPRESS,
                            help="cls (text only; its default) or mean")
        parser.add_argument("--position", choices=("sinusoidal", "rope", "none"), default=argparse.SUPPRESS,
                            help="positional encoding (default sinusoidal; 2-D for images)")
        parser.add_argument("--limit", type=_positive_int, default=argparse.SUPPRESS,
                            help="use at most N training examples (validation is carved from them)")
        parser.add_argument("--val-fraction", type=float, default=argparse.SUPPRESS, help="(default 0.1)")
        _experiment_arguments(parser, "defaults 64 wide, 4 heads, 2 layers", "defaults 20, patience 5, batch 64")
        parser.set_defaults(func=_sequence)
    graph = subparsers.add_parser("graph", help="graph classification (MUTAG), k-fold cross-validated",
                                  description="Classify molecules; attention runs along bonds plus self-loops.")
    graph.add_argument("--dataset", default=argparse.SUPPRESS, help="TUDataset name (only MUTAG)")
    graph.add_argument("--add", default=argparse.SUPPRESS, help='pattern joined to the bonds, e.g. "VirtualNodes(1)"')
    graph.add_argument("--encoding", choices=("none", "laplacian", "random_walk"), default=argparse.SUPPRESS,
                       help="positional features (default none)")
    graph.add_argument("--encoding-dim", type=_positive_int, default=argparse.SUPPRESS,
                       help="eigenvectors or walk length (default 8)")
    graph.add_argument("--folds", type=int, default=argparse.SUPPRESS, help="cross-validation folds (default 10)")
    _experiment_arguments(graph, "defaults 64 wide, 4 heads, 3 layers", "defaults 100, patience 30, batch 32")
    graph.set_defaults(func=_graph)


# node classification -------------------------------------------------------------------------

def _node(args: argparse.Namespace) -> int:
    from .experiments.node_classification import NodeConfig, run
    from .experiments.node_report import markdown_table

    if "models" in args:  # --models a b,c -> ("a", "b", "c")
        args.models = tuple(name for names in args.models for name in names)
    try:
        m = _run_experiment(args, NodeConfig, run)
    except ValueError as e:  # refused before anything was written: output folder, checkpoints
        raise CommandError(str(e)) from None
    print(markdown_table(m["summary"]))
    print(f"{len(m['runs'])} runs in {m['wall_time_s']:.0f} s; wrote results.json, results.md, accuracy.png to {m['out']}")
    return 0


def _model_names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _add_node(subparsers: argparse._SubParsersAction) -> None:
    # Names spelled out (not imported) so that building the parser does not import torch;
    # NodeConfig validates them and tests pin the two lists together.
    models, encodings = ("graph", "graph+virtual", "graph+expander", "full", "gcn", "gat"), ("none", "laplacian", "randomwalk")
    keep = argparse.SUPPRESS  # unset options keep NodeConfig's defaults
    parser = subparsers.add_parser(
        "node", help="node classification on Planetoid (Cora, CiteSeer, PubMed): graphattn vs GCN and GAT",
        description="Train every model with every seed on the public split (early stopping on validation "
                    "accuracy) and report mean +- std test accuracy, epochs, time per epoch and peak memory.")
    parser.add_argument("--dataset", default=keep, help="Cora, CiteSeer or PubMed (default Cora)")
    parser.add_argument("--models", nargs="+", type=_model_names, default=keep, metavar="MODEL",
                        help=f"models to compare, space- or comma-separated, from {', '.join(models)} (default all but full)")
    parser.add_argument("--architecture", choices=("attention", "transformer"), default=keep,
                        help="graphattn model: GraphAttentionNetwork (GAT form, default) or GraphTransformer")
    parser.add_argument("--seeds", type=_positive_int, default=keep, help="runs per model, seeds 0..N-1 (default 10)")
    parser.add_argument("--epochs", type=_positive_int, default=keep, help="most epochs per run (default 200)")
    parser.add_argument("--patience", type=_positive_int, default=keep,
                        help="early stopping on validation accuracy, ties broken by validation loss (default 50)")
    parser.add_argument("--lr", type=float, default=keep, help="graphattn models: Adam learning rate")
    parser.add_argument("--weight-decay", type=float, default=keep, help="graphattn models: weight decay")
    parser.add_argument("--hidden", type=_positive_int, default=keep, help="graphattn models: width")
    parser.add_argument("--heads", type=_positive_int, default=keep, help="graphattn models: attention heads")
    parser.add_argument("--layers", type=_positive_int, default=keep, help="graphattn models: attention layers")
    parser.add_argument("--dropout", type=float, default=keep,
                        help="graphattn models: dropout on inputs, hidden layers and attention weights")
    parser.add_argument("--encoding", choices=encodings, default=keep, help="positional features (default none)")
    parser.add_argument("--encoding-dim", type=_positive_int, default=keep,
                        help="eigenvectors or walk length (default 8)")
    parser.add_argument("--out", metavar="DIR", default=keep, help="output folder (default runs/node/<dataset>)")
    parser.add_argument("--save", action="store_true", default=keep,
                        help="checkpoint every (model, seed) under DIR/checkpoints after each epoch")
    parser.add_argument("--resume", action="store_true", default=keep,
                        help="continue the runs saved with --save (same settings; more --epochs allowed)")
    parser.add_argument("--root", metavar="DIR", default=keep, help="data root (default $GRAPHATTN_DATA or datasets/)")
    parser.add_argument("--mirror", metavar="DIR", default=keep, help="offline mirror (default $GRAPHATTN_MIRROR)")
    parser.add_argument("--threads", type=_positive_int, default=keep, help="torch CPU threads")
    parser.add_argument("--workers", type=_positive_int, default=keep,
                        help="runs trained at once in separate one-thread processes (default: CPU cores, at most 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=keep, help="(default cpu)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=keep, help="no progress bars")
    parser.set_defaults(func=_node)


# the entry point ----------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_patterns, _add_experiments, _add_node]
"""One ``_add_<name>(subparsers)`` per command group."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphattn", description="Self-attention as a graph neural network layer.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``graphattn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except CommandError as e:
        print(f"graphattn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
