"""The command line: main(argv) returns an exit status and prints what it did."""

import subprocess
import sys

import pytest

from graphattn.cli import build_parser, main
from graphattn.experiments.graph_config import GraphConfig
from graphattn.experiments.node_config import NodeConfig
from graphattn.experiments.options import option_fields
from graphattn.experiments.sequence_config import SequenceConfig
from graphattn.patterns import PATTERN_NAMES, longformer


def test_patterns_list(capsys):
    assert main(["patterns", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PATTERN_NAMES)
    assert all(len(line.split()) > 2 for line in lines)  # every name has a one-line description


def test_patterns_show(capsys, tmp_path):
    png = tmp_path / "longformer.png"
    assert main(["patterns", "show", "longformer(radius=2, global_tokens=[0])", "--n", "32", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    pattern = longformer(2, (0,))
    assert out.startswith(repr(pattern) + "\n")
    assert f"edges={pattern.edge_index(32).size(1)}" in out
    assert pattern.to_text(32) in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_patterns_gallery_writes_the_picture(capsys, tmp_path):
    png = tmp_path / "gallery.png"
    assert main(["patterns", "gallery", "--n", "16", "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert f"wrote {png}" in capsys.readouterr().out


def test_bad_pattern_returns_2(capsys):
    assert main(["patterns", "show", "Windw(2)"]) == 2
    captured = capsys.readouterr()
    assert "unknown pattern 'Windw'" in captured.err and "did you mean 'Window'" in captured.err
    assert captured.out == ""
    assert main(["patterns", "show", "Random(5)", "--n", "3"]) == 2
    assert "per_query=5" in capsys.readouterr().err


def test_usage_errors_return_2(capsys):
    assert main([]) == 2
    assert main(["patterns", "show", "Full()", "--n", "zero"]) == 2
    assert main(["patterns", "--help"]) == 0
    capsys.readouterr()


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "graphattn", "patterns", "show", "Window(1)", "--n", "4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "###." in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["text", "--pattern", "Windw(2)"], "did you mean 'Window'"),
    (["image", "--pattern", "Grid2D(1, 8)"], "width"),
    (["speech", "--pooling", "cls"], "pooling='cls' needs a <cls> token"),
    (["text", "--hidden", "30", "--heads", "4"], "heads (4) must divide hidden (30)"),
    (["text", "--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["graph", "--dataset", "ENZYMES"], "dataset must be one of ('MUTAG',)"),
    (["graph", "--add", "VirtualNode(1)"], "did you mean 'VirtualNodes'"),
    (["graph", "--folds", "1"], "folds must be an int >= 2"),
    (["graph", "--encoding", "laplacian", "--encoding-dim", "12"], "k < 10"),
    (["graph", "--val-fraction", "0.5"], "val_fraction must be in (0, 0.5)"),
    (["node", "--lr", "0"], "lr must be a float > 0"),
    (["node", "--seeds", "0"], "seeds must be a positive int"),
])
def test_bad_experiment_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err


def test_old_spelling_randomwalk_is_refused(capsys):
    assert main(["node", "--encoding", "randomwalk"]) == 2
    assert "invalid choice: 'randomwalk'" in capsys.readouterr().err


COMMANDS = [("text", SequenceConfig), ("speech", SequenceConfig), ("image", SequenceConfig),
            ("graph", GraphConfig), ("node", NodeConfig)]


@pytest.mark.parametrize("command, config", COMMANDS)
def test_options_are_generated_from_the_config_fields(command, config, capsys):
    """Every option of the config is a flag with the field's default in its help; giving each
    flag its default value on the command line makes the default config again."""
    parser = build_parser()
    assert main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    argv = [command]
    for s in option_fields(config):
        flag = "--" + s.name.replace("_", "-")
        if isinstance(s.default, bool):
            flag = flag if not s.default else f"--no-{flag[2:]}"
            assert flag in help_text
            assert getattr(parser.parse_args([command, flag]), s.name) is (not s.default)
            continue
        assert flag in help_text, flag
        if s.choices:
            assert "{" + ",".join(s.choices) + "}" in help_text
        if s.default is not None:
            shown = ", ".join(s.default) if isinstance(s.default, tuple) else s.default
            assert f"(default {shown})" in help_text, flag
            argv += [flag, *(s.default if isinstance(s.default, tuple) else [str(s.default)])]
    args = parser.parse_args(argv)
    given = {s.name: getattr(args, s.name) for s in option_fields(config) if s.name in args}
    fixed = {"task": command} if config is SequenceConfig else {}
    assert config.from_options(**fixed, **given) == config.from_options(**fixed)
    assert not {s.name for s in option_fields(config)} & set(vars(parser.parse_args([command])))  # unset stays unset


def test_models_take_spaces_and_commas():
    args = build_parser().parse_args(["node", "--models", "graph", "gat,gcn"])
    assert args.models == ("graph", "gat", "gcn")


def test_version(capsys):
    from graphattn import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"graphattn {__version__}"


def test_study_help_says_what_the_command_does(capsys):
    assert main(["study", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "unset: runs/study/<task>" in text and "nothing is written" not in text
    assert "--no-isolate run every pattern in this process" in text  # not "no each run in a fresh process"
    assert "(a study compares single models) (default 1)" in text and "unset: the task's) (default 1)" not in text
    assert "most epochs of every run (the same budget for every task) (default 20)" in text
