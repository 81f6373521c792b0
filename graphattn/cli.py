"""The ``graphattn`` command line: a thin argparse layer over the library.

Each command group is added by one small ``_add_<name>(subparsers)`` function that registers
its parser and sets ``func`` (a function ``args -> int``); list it in :data:`COMMANDS`.
``main(argv)`` returns the exit status: 0 on success, 2 on bad input (the message goes to
stderr), and never calls ``sys.exit`` itself.

    graphattn patterns list
    graphattn patterns show "longformer(radius=2, global_tokens=[0])" --n 32 --png longformer.png
    graphattn patterns gallery --n 32 --png docs/patterns.png
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


# the entry point ----------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_patterns]
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
