"""Settings as dataclass fields: the one place a default, a help text and a choice list live.

:func:`option` makes a setting, :func:`piece` puts a small config (an instance with the
experiment's defaults) inside a larger one, :func:`option_fields` lists a config's settings with
the pieces flattened, and :class:`Options` makes a config from flat names (``hidden``, ``lr``:
the command line's ``--hidden``, ``--lr``). :mod:`graphattn.cli` builds its options from
:func:`option_fields`; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import field as _field
from dataclasses import fields, is_dataclass, replace
from typing import Any, ClassVar, NamedTuple, TypeVar

__all__ = ["option", "piece", "Setting", "option_fields", "Options", "document", "refuse_unused", "resolved"]

T = TypeVar("T")
C = TypeVar("C", bound=type)
Opts = TypeVar("Opts", bound="Options")


def option(default: Any, help: str, *, choices: tuple | None = None, metavar: str | None = None,
           negative: str | None = None) -> Any:
    """A setting: a dataclass field with its ``default``, its ``help`` (one line) and optional
    ``choices``. A switch that is on by default is turned off by ``--no-<name>``, whose help is
    ``negative`` (default: "no " + ``help``, which reads right only for a noun phrase)."""
    return _field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar,
                                             "negative": negative})


def piece(default: Any, title: str, **help: str) -> Any:
    """A piece of a config: a smaller config with the experiment's defaults (an instance), a
    ``title`` for its group of options, and help texts that replace the piece's own here."""
    return _field(default=default, metadata={"title": title, "help": help})


class Setting(NamedTuple):
    """One option of a config: its flat ``name``, the ``piece`` holding it (``None``: the config
    itself), the class declaring it (``owner``), its default, help, choices, metavar and the help
    of its ``--no-`` switch (``negative``)."""

    name: str
    piece: str | None
    owner: type
    default: Any
    help: str
    choices: tuple | None
    metavar: str | None
    negative: str | None = None


def option_fields(cls: type) -> Iterator[Setting]:
    """Every option of config class ``cls``, pieces flattened, in declaration order. Fields
    without help (such as a task fixed by the command) are not options."""
    for f in fields(cls):
        if is_dataclass(f.default):
            for g in fields(f.default):
                if isinstance(g.metadata.get("help"), str):
                    text = f.metadata["help"].get(g.name, g.metadata["help"])
                    yield Setting(g.name, f.name, type(f.default), getattr(f.default, g.name), text,
                                  g.metadata["choices"], g.metadata["metavar"], g.metadata.get("negative"))
        elif "help" in f.metadata:
            yield Setting(f.name, None, cls, f.default, f.metadata["help"], f.metadata["choices"],
                          f.metadata["metavar"], f.metadata.get("negative"))


class Options:
    """What a composed config can do with flat option names (mixed into each experiment config)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # every config is a dataclass (the registry checks it)

    @classmethod
    def from_options(cls: type[Opts], **options: Any) -> Opts:
        """The config with the experiment's defaults and ``options`` (flat names) set."""
        return cls(**_assemble(cls, {f.name: f.default for f in fields(cls) if is_dataclass(f.default)}, options))

    def with_options(self: Opts, **options: Any) -> Opts:
        """A copy with ``options`` (flat names) changed."""
        pieces = {f.name: getattr(self, f.name) for f in fields(self) if is_dataclass(f.default)}
        return replace(self, **_assemble(type(self), pieces, options))

    def options(self) -> dict[str, Any]:
        """Every option by its flat name (what ``results.json`` records)."""
        return {s.name: getattr(getattr(self, s.piece) if s.piece else self, s.name) for s in option_fields(type(self))}


def refuse_unused(config: Any, names: tuple[str, ...], used: bool, why: str) -> None:
    """Refuse the options ``names`` (flat names) of ``config`` that are set away from their
    defaults when the run would not use them (``used`` false), so no option is ever dropped
    silently; ``why`` says where they apply. Left at its default an option is fine: it is shown
    in ``--help`` and recorded, not asked for."""
    if used:
        return
    defaults = {s.name: s.default for s in option_fields(type(config))}
    values = config.options()
    changed = [name for name in names if values[name] != defaults[name]]
    if changed:
        given = ", ".join(f"{name}={values[name]!r}" for name in changed)
        raise ValueError(f"{given} would be ignored: {why}")


def _assemble(cls: type, pieces: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of ``cls``: ``pieces`` with the flat ``options`` laid into them."""
    options = dict(options)
    into: dict[str | None, dict[str, Any]] = {}
    for setting in option_fields(cls):
        if setting.name in options:
            into.setdefault(setting.piece, {})[setting.name] = options.pop(setting.name)
    top = {f.name: options.pop(f.name) for f in fields(cls) if f.name in options and f.name not in pieces}
    if options:
        raise TypeError(f"{cls.__name__} has no option {', '.join(sorted(options))}")
    laid = {name: replace(value, **into.get(name, {})) for name, value in pieces.items()}
    return {**top, **into.get(None, {}), **laid}


def resolved(value: T | None, name: str) -> T:
    """A setting that its config's ``__post_init__`` fills in when it is left unset (from a budget,
    a dataset's defaults): never ``None`` on a constructed config, so ``None`` here is a bug."""
    if value is None:
        raise RuntimeError(f"{name} is unset: the config's __post_init__ should have resolved it")
    return value


def document(cls: C) -> C:
    """Class decorator: check that the flat names are unique, and append the options with their
    defaults to the docstring (the fields are the one source of both)."""
    settings = list(option_fields(cls))
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: option names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    lines = [f"        {s.name}{f' ({s.piece})' if s.piece else ''}: {s.help} (default: ``{s.default!r}``)"
             for s in settings]
    if cls.__doc__ is None:
        raise TypeError(f"{cls.__name__} needs a docstring: @document appends its options to it")
    cls.__doc__ = (f"{cls.__doc__.rstrip()}\n\n    Options (flat names; in parentheses the piece holding them):\n"
                   + "\n".join(lines) + "\n")
    return cls
