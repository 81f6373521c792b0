"""The pattern study: one protocol per pattern, a table, a plot, and resuming where it stopped."""

import json

import pytest

from graphattn.cli import main
from graphattn.experiments.study import markdown_table, summarise
from graphattn.experiments.study_config import StudyConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--limit", "40", "--max-length", "24", "--epochs", "1", "--hidden", "16", "--heads", "2", "--layers", "1",
        "--no-progress", "--no-isolate"]


def test_study_runs_writes_and_resumes(offline_data, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "listops", "--patterns", "Full()", "Window(2)", "--seeds", "2", *TINY, "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    rows = {r["pattern"]: r for r in result["summary"]}
    assert list(rows) == ["Full()", "Window(radius=2)"] and result["runs_reused"] == 0
    assert rows["Full()"]["runs"] == 2 and rows["Full()"]["seeds"] == [0, 1]
    assert rows["Window(radius=2)"]["keys_per_query"] < rows["Full()"]["keys_per_query"]
    assert rows["Full()"]["time_vs_reference"] == 1.0 and rows["Full()"]["acc_vs_reference_points"] == 0.0
    assert (out / "accuracy_cost.png").read_bytes()[:4] == b"\x89PNG"
    assert "| `Window(radius=2)` |" in (out / "results.md").read_text()
    assert "2 seeds per pattern" in (out / "results.md").read_text()
    printed = capsys.readouterr().out
    assert "4 runs (0 resumed)" in printed

    # A rerun reads every finished run (progress bars on or off is the same run) ...
    assert main([*argv[:-3], "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["runs_reused"] == 4
    assert [r["test_accs"] for r in again["summary"]] == [r["test_accs"] for r in result["summary"]]
    # ... and a changed setting is a new run.
    assert main([*argv, "--lr", "0.002"]) == 0
    assert json.loads((out / "results.json").read_text())["runs_reused"] == 0


def test_study_config_defaults_and_errors():
    cfg = StudyConfig.from_options(task="pixels")
    assert cfg.patterns[0] == "Full()" and "Grid2D(radius=2, width=28)" in cfg.patterns
    assert cfg.run_config(cfg.patterns[1], 5).split.seed == 5
    with pytest.raises(ValueError, match="pattern"):
        StudyConfig.from_options(task="pixels", patterns=("Grid2D(2, 30)",))  # 784 pixels are no rows of 30
    with pytest.raises(ValueError, match="patterns"):
        StudyConfig.from_options(task="listops", patterns=())


def test_family_adds_the_tasks_branches_beyond_fixed_edges_once():
    listops = StudyConfig.from_options(task="listops", family=True)
    assert listops.patterns[:5] == StudyConfig.from_options(task="listops").patterns
    assert listops.patterns[5:] == ("LSH(buckets=8, seed=0)", "KMeans(clusters=4, iterations=3)", "TopK(k=8)",
                                    "performer(64)", "linformer(32)")
    chosen = StudyConfig.from_options(task="pixels", patterns=("Full()", "TopK(k=32)"), family=True).patterns
    assert chosen[:2] == ("Full()", "TopK(k=32)") and chosen.count("TopK(k=32)") == 1 and "linformer(64)" in chosen
    with pytest.raises(ValueError, match="family: the text task has no family set"):
        StudyConfig.from_options(task="text", family=True)


def test_summary_against_the_reference():
    def one(pattern, acc, seed, t):
        return {"pattern": pattern, "test_acc": acc, "best_val_acc": acc, "epochs_run": 3, "time_per_epoch_s": t,
                "peak_memory_mb": 100 * t, "keys_per_query": 4.0, "parameters": 10, "config": {"seed": seed}}

    rows = summarise([one("Window(radius=1)", 0.5, 0, 1.0), one("Full()", 0.8, 0, 4.0), one("Full()", 0.6, 1, 4.0)])
    window, full = rows
    assert full["test_acc_mean"] == pytest.approx(0.7) and full["test_acc_std"] == pytest.approx(0.1414, abs=1e-4)
    assert window["reference"] == "Full()" and window["acc_vs_reference_points"] == pytest.approx(-20.0)
    assert window["time_vs_reference"] == 0.25 and window["memory_vs_reference"] == 0.25
    # one seed has no spread: its value alone (issue 24 retired the "± 0.0" this line used to pin)
    assert "| `Window(radius=1)` | 4.0 | 50.0 | -20.0 |" in markdown_table(rows)
    assert "| `Full()` | 4.0 | 70.0 ± 14.1 | +0.0 |" in markdown_table(rows)


def test_isolated_runs_report_their_own_process(offline_data, tmp_path):
    out = tmp_path / "isolated"
    argv = ["study", "listops", "--patterns", "Window(1)", "--seeds", "1", *TINY[:-1], "--out", str(out)]
    assert main(argv) == 0
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["pattern"] == "Window(radius=1)" and run["peak_memory_mb"] > 0 and run["keys_per_query"] < 3


def test_patterns_with_commas_stay_whole():
    from graphattn.cli import build_parser

    args = build_parser().parse_args(["study", "listops", "--patterns", "longformer(8, [0])", "Full(),Window(2)"])
    assert args.patterns == ("longformer(8, [0])", "Full()", "Window(2)")


def test_study_reports_data_dependent_patterns_and_operators(offline_data, tmp_path):
    out = tmp_path / "branches"
    argv = ["study", "listops", "--patterns", "Full()", "LSH(4)", "KMeans(2)", "TopK(4)", "performer(8)",
            "linformer(size=4)", "--seeds", "1", *TINY, "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    rows = {r["pattern"]: r for r in result["summary"]}
    assert list(rows) == ["Full()", "LSH(buckets=4, seed=0)", "KMeans(clusters=2, iterations=3)", "TopK(k=4)",
                          "performer(8)", "linformer(4)"]
    full = rows["Full()"]
    # every sequence has more than 4 tokens, so top-4 routing gives each query exactly 4 keys
    assert rows["TopK(k=4)"]["keys_per_query"] == 4.0 and rows["TopK(k=4)"]["keys_counted"] == "keys (routed)"
    for routed in ("LSH(buckets=4, seed=0)", "KMeans(clusters=2, iterations=3)"):
        assert 1.0 <= rows[routed]["keys_per_query"] < full["keys_per_query"]  # buckets split the sequence
    assert (rows["performer(8)"]["keys_per_query"], rows["performer(8)"]["keys_counted"]) == (8, "features")
    assert (rows["linformer(4)"]["keys_per_query"], rows["linformer(4)"]["keys_counted"]) == (4, "rank")
    # Linformer learns a [4, longest] key and value mix per layer: more weights than Full()'s model
    assert rows["linformer(4)"]["parameters"] > full["parameters"] == rows["performer(8)"]["parameters"]
    for r in rows.values():
        assert r["time_per_epoch_s"] > 0 and r["peak_memory_mb"] > 0 and r["time_vs_reference"] > 0
    operator_runs = [r for r in result["runs"] if r["operator"] is not None]
    assert [(r["operator"], r["pattern"]) for r in operator_runs] == [("performer(8)", "Full()"), ("linformer(4)", "Full()")]
    table = (out / "results.md").read_text()
    assert "| `performer(8)` | 8 (features) |" in table and "| `linformer(4)` | 4 (rank) |" in table
    assert "| `TopK(k=4)` | 4.0 (routed) |" in table


def test_study_operators_build_into_every_block():
    from graphattn.experiments.sequence_classification import _model
    from graphattn.nn import LinearAttention, Linformer

    for text, kind in (("performer(8)", LinearAttention), ("linformer(4)", Linformer)):
        cfg = StudyConfig.from_options(task="listops", patterns=(text,), hidden=16, heads=2).run_config(text, 0)
        model = _model(cfg, cfg.parsed_pattern(), 20, 10, max_length=24)
        assert [type(b.attn.operator) for b in model.blocks] == [kind, kind]
    assert model.blocks[0].attn.operator.max_length == 24 and model.blocks[0].attn.operator.rank == 4


@pytest.mark.parametrize("text, match", [
    ("reformer(64)", "neither an operator .*performer\\(M\\).*linformer\\(K\\).* nor a pattern"),
    ("performer(0)", "performer\\(M\\) with one positive int"),
    ("linformer", "linformer\\(K\\) with one positive int"),
    ("performer(64, 2)", "one positive int"),
])
def test_unknown_or_malformed_operators_are_refused(text, match):
    with pytest.raises(ValueError, match=match):
        StudyConfig.from_options(task="listops", patterns=("Full()", text))


def test_an_operator_needs_full_attention_and_a_bad_branch_returns_2(capsys):
    from graphattn.experiments.sequence_config import SequenceConfig

    assert SequenceConfig.from_options(task="text", operator="performer(16)").pattern == "Full()"
    with pytest.raises(ValueError, match="attends along Full\\(\\); pattern must be Full\\(\\)"):
        SequenceConfig.from_options(task="listops", pattern="Window(2)", operator="linformer(8)")
    assert main(["study", "listops", "--patterns", "Full()", "favor(64)", "--no-progress"]) == 2
    assert "neither an operator" in capsys.readouterr().err
