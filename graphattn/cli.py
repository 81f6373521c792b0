"""The ``graphattn`` command line: a thin argparse layer over the library.

Each command group is added by one small ``_add_<name>(subparsers)`` function that registers
its parser and sets ``func`` (a function ``args -> int``); list it in :data:`COMMANDS`. The
experiment commands come from the task registry (:mod:`graphattn.experiments.registry`): one
command per task, its options generated from the task's config dataclass.
``main(argv)`` returns the exit status: 0 on success, 2 on bad input (the message goes to
stderr), and never calls ``sys.exit`` itself.

    graphattn patterns list
    graphattn patterns show "longformer(radius=2, global_tokens=[0])" --n 32 --png longformer.png
    graphattn patterns gallery --n 32 --png docs/patterns.png
    graphattn node --dataset Cora --models graph gat --seeds 10 --out runs/node/Cora
    graphattn text --epochs 10 --out runs/text          (also: speech, image; --pattern, --limit)
    graphattn graph --add "VirtualNodes(1)" --folds 10 --out runs/mutag
    graphattn study listops --patterns "Full()" "longformer(8, [0])" --seeds 2   (also: pixels, speech, ...)
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


#: The most edges (or generator work, see :func:`_check_cost`) ``patterns show`` takes on: 2**26
#: (key, query) int64 pairs are 1 GiB.
SHOW_MAX_EDGES = 1 << 26


def _check_cost(pattern, n: int) -> None:
    """Refuse, before anything is allocated, a pattern whose edges on ``n`` nodes may exceed
    :data:`SHOW_MAX_EDGES`, or one with an int parameter (a radius, a degree; not a seed) whose
    product with ``n`` does: generators may do that much work (``Expander(degree)`` draws
    ``degree / 2`` permutations of ``n``) even where few edges come out."""
    limit = f"at most {SHOW_MAX_EDGES:,} (2**26)"
    edges = pattern.max_edges(n)
    if edges > SHOW_MAX_EDGES:
        raise CommandError(f"{pattern!r} on --n {n} may have up to {edges:,} edges; patterns show lays out {limit}; "
                           "use a smaller --n")
    from dataclasses import fields, is_dataclass

    todo = [pattern]
    while todo:
        part = todo.pop()
        todo.extend(getattr(part, "parts", ()))
        for f in fields(part) if is_dataclass(part) else ():
            value = getattr(part, f.name)
            if f.name != "seed" and isinstance(value, int) and not isinstance(value, bool) and value * n > SHOW_MAX_EDGES:
                raise CommandError(f"{f.name}={value:,} of {part!r} times --n {n} is {value * n:,}; patterns show "
                                   f"takes on {limit}; use a smaller {f.name} or --n")


def _patterns_show(args: argparse.Namespace) -> int:
    from .patterns import parse_pattern
    from .patterns.base import TEXT_VIEW_MAX

    try:
        pattern = parse_pattern(args.pattern)
        pattern.validate(args.n)
        _check_cost(pattern, args.n)
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
    gallery = sub.add_parser("gallery",
                             help="draw full, local, stride, global, random, Longformer and BigBird side by side")
    gallery.add_argument("--n", type=_positive_int, default=32, help="number of nodes (default 32)")
    gallery.add_argument("--png", metavar="FILE", required=True, help="where to write the picture")
    gallery.set_defaults(func=_patterns_gallery)


# experiments: generated from the config dataclasses -------------------------------------------

class _Names(argparse.Action):
    """``--models a b,c`` -> ``("a", "b", "c")``; commas inside brackets stay, so
    ``--patterns "longformer(8, [0])" "Full()"`` is two patterns."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, tuple(name for text in values for name in _split_top(text) if name))


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _add_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One ``--flag-name`` per option of ``config_cls`` (see :mod:`graphattn.experiments.options`),
    grouped by piece. Type, choices, help and the default shown in the help all come from the
    field; ranges are left to the config, which checks them once. Unset options stay out of the
    namespace (``argparse.SUPPRESS``), so the config's own defaults apply."""
    from dataclasses import fields, is_dataclass

    from .experiments.options import option_fields

    titles = {f.name: f.metadata["title"] for f in fields(config_cls) if is_dataclass(f.default)}
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in option_fields(config_cls):
        if setting.piece is not None and setting.piece not in groups:
            groups[setting.piece] = parser.add_argument_group(titles[setting.piece])
        _add_option(groups.get(setting.piece, parser), setting)


def _add_option(group: argparse._ActionsContainer, s) -> None:
    from typing import get_args, get_origin, get_type_hints

    kind = get_type_hints(s.owner)[s.name]  # int, int | None, tuple[str, ...], ...
    if get_origin(kind) is not tuple:
        kind = next((k for k in get_args(kind) if k is not type(None)), kind)  # X | None -> X
    flag, keep = "--" + s.name.replace("_", "-"), argparse.SUPPRESS
    if kind is bool:  # a switch that flips the default: --save, --no-progress
        group.add_argument(f"--no-{flag[2:]}" if s.default else flag, dest=s.name, default=keep,
                           action="store_false" if s.default else "store_true",
                           help=(s.negative or f"no {s.help}") if s.default else s.help)
        return
    shown = ", ".join(s.default) if isinstance(s.default, tuple) else s.default
    text = s.help if s.default is None else f"{s.help} (default {shown})"
    parse = {"nargs": "+", "action": _Names} if get_origin(kind) is tuple else {"type": kind}
    group.add_argument(flag, default=keep, choices=s.choices, metavar=s.metavar, help=text, **parse)


def _run_task(task, args: argparse.Namespace) -> int:
    """Make the task's config from the options given (the config's defaults for the rest), run
    it, print its report."""
    from .datasets import DatasetUnavailableError
    from .experiments.options import option_fields

    given = {s.name: getattr(args, s.name) for s in option_fields(task.config) if s.name in args}
    if task.positional is not None:
        given[task.positional[0]] = getattr(args, task.positional[0])
    try:
        config = task.make_config(**given)
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    try:
        results = task.run(config)
    except (DatasetUnavailableError, ValueError) as e:  # refused before anything was written
        raise CommandError(str(e)) from None
    text = task.report(results)
    if text:
        print(text)
    return 0


def _add_tasks(subparsers: argparse._SubParsersAction) -> None:
    """One command per registered task (:mod:`graphattn.experiments.registry`), its options
    generated from the task's config dataclass."""
    from functools import partial

    from .experiments.tasks import TASKS

    for task in TASKS.values():
        parser = subparsers.add_parser(task.name, help=task.help, description=task.description)
        _add_options(parser, task.config)
        if task.positional is not None:
            name, choices, text = task.positional
            parser.add_argument(name, choices=choices, help=text)
        parser.set_defaults(func=partial(_run_task, task))


# the entry point ----------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_patterns, _add_tasks]
"""One ``_add_<name>(subparsers)`` per command group."""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="graphattn", description="Self-attention as a graph neural network layer.")
    parser.add_argument("--version", action="version", version=f"graphattn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


#: Set to 1 to let an unexpected error end in its traceback instead of one line.
DEBUG_ENV = "GRAPHATTN_DEBUG"


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def main(argv: list[str] | None = None) -> int:
    """Run ``graphattn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status:
    0 on success, 2 on any error, reported as one line on stderr (an unexpected one with its
    type; ``GRAPHATTN_DEBUG=1`` shows its traceback), 130 when interrupted."""
    import os

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    prefix = f"graphattn {args.command}: error:"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"graphattn {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError) as e:  # bad input, a corrupt file, a missing dataset
        print(f"{prefix} {_one_line(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix} out of memory; use smaller sizes (--n, --batch-size, --limit)", file=sys.stderr)
        return 2
    except Exception as e:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"{prefix} {type(e).__name__}: {_one_line(e)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
