"""The harness's plug points: metrics equal their definitions (average precision against a
float64 oracle written from the definition), the streamed sums equal the one-shot value, the
split helpers partition what they split, and the one training step treats a shared batch like a
whole one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from graphattn.experiments.harness import Batch, drop_input, evaluate, train_epoch
from graphattn.experiments.metrics import (
    Accuracy,
    AveragePrecision,
    CrossEntropy,
    CrossEntropyLoss,
    L1Loss,
    MeanAbsoluteError,
    MultiLabelBCELoss,
    Objective,
    average_precision,
)
from graphattn.experiments.splits import carve, per_class_split, random_split, stratified_folds

CPU = torch.device("cpu")


def ap_oracle(scores: list[float], labels: list[int]) -> float:
    """Average precision from its definition: at each distinct threshold, from the highest,
    precision times the recall gained by the rows at or above it."""
    positives = sum(labels)
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        chosen = [label for s, label in zip(scores, labels) if s >= threshold]
        recall = sum(chosen) / positives
        ap += (recall - previous_recall) * sum(chosen) / len(chosen)
        previous_recall = recall
    return ap


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_average_precision_equals_its_definition_with_ties(data):
    n = data.draw(st.integers(1, 30))
    scores = data.draw(st.lists(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 2.0, 3.5]), min_size=n, max_size=n))
    labels = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: sum(v) > 0))
    expected = ap_oracle(scores, labels)
    assert average_precision(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(expected, abs=1e-12)


def test_average_precision_of_a_perfect_and_a_reversed_ranking():
    labels = torch.tensor([1, 1, 0, 0, 0])
    assert average_precision(torch.tensor([5.0, 4, 3, 2, 1]), labels) == 1.0
    assert average_precision(torch.tensor([1.0, 2, 3, 4, 5]), labels) == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_multilabel_average_precision_skips_nan_labels_and_one_class_columns_as_lrgb():
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, math.nan], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.3, 5.0], [0.4, 0.5, 0.9], [0.1, 0.7, 0.4]])
    first = ap_oracle([0.9, 0.2, 0.4, 0.1], [1, 0, 1, 0])
    third = ap_oracle([0.2, 0.9, 0.4], [1, 0, 1])  # the NaN row is left out; column 1 has no positive
    assert AveragePrecision().value(out, y) == pytest.approx((first + third) / 2)
    with pytest.raises(ValueError, match="positive and a negative"):
        AveragePrecision().value(out[:, 1:2], y[:, 1:2])


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), classes=st.integers(2, 5), cuts=st.lists(st.integers(0, 40), max_size=4),
       seed=st.integers(0, 2**16))
def test_streamed_sums_over_any_batching_equal_the_value_on_everything(rows, classes, cuts, seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(rows, classes, generator=g, dtype=torch.float64)
    y = torch.randint(classes, (rows,), generator=g)
    target = torch.randn(rows, generator=g, dtype=torch.float64)
    bounds = sorted({0, rows, *(c for c in cuts if c < rows)})
    for metric, labels, outputs in ((Accuracy(), y, out), (CrossEntropy(), y, out),
                                    (MeanAbsoluteError(), target, out[:, :1])):
        num = den = 0.0
        for a, b in zip(bounds, bounds[1:]):
            n, d = metric.sums(outputs[a:b], labels[a:b])
            num, den = num + n, den + d
        # value reduces in the outputs' dtype (accuracy: a float32 mean), the sums in float64
        assert num / den == pytest.approx(metric.value(outputs, labels), rel=1e-7, abs=1e-12)


def test_losses_reduce_as_their_metrics_measure():
    out, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    assert CrossEntropyLoss()(out, y).item() == pytest.approx(CrossEntropy().value(out, y))
    assert CrossEntropyLoss(0.1)(out, y).item() == pytest.approx(F.cross_entropy(out, y, label_smoothing=0.1).item())
    pred, target = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.5])
    assert L1Loss()(pred, target).item() == pytest.approx(MeanAbsoluteError().value(pred, target)) == 0.75
    logits, labels = torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, math.nan]])
    assert MultiLabelBCELoss()(logits, labels).item() == pytest.approx(math.log(2))  # the NaN label is left out


def test_an_objective_names_metrics_it_has():
    with pytest.raises(ValueError, match="monitor='mae' must name one of the metrics"):
        Objective(CrossEntropyLoss(), (Accuracy(),), "mae")
    assert Objective(L1Loss(), (MeanAbsoluteError(),), "mae").main.higher_is_better is False


# splits ----------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 400), seed=st.integers(0, 2**31))
def test_random_split_partitions_60_20_20_and_depends_on_its_seed_alone(n, seed):
    masks = random_split(n, seed)
    stacked = torch.stack([masks["train"], masks["val"], masks["test"]])
    assert bool((stacked.sum(0) == 1).all())  # every node in exactly one part
    assert stacked.sum(1).tolist() == [int(0.6 * n), int(0.2 * n), n - int(0.6 * n) - int(0.2 * n)]
    again = random_split(n, seed)
    assert all(torch.equal(masks[k], again[k]) for k in masks)


def test_random_split_differs_between_seeds_and_checks_its_fractions():
    assert not torch.equal(random_split(100, 0)["train"], random_split(100, 1)["train"])
    with pytest.raises(ValueError, match="fractions"):
        random_split(10, 0, (0.5, 0.5, 0.5))


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(5, 40), min_size=2, max_size=5), seed=st.integers(0, 2**20),
       train=st.integers(1, 3), val=st.integers(0, 2))
def test_per_class_split_draws_k_of_each_class(sizes, seed, train, val):
    labels = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])[torch.randperm(sum(sizes))]
    masks = per_class_split(labels, seed, train, val)
    for c in range(len(sizes)):
        assert int(masks["train"][labels == c].sum()) == train and int(masks["val"][labels == c].sum()) == val
    assert bool((masks["train"].int() + masks["val"].int() + masks["test"].int() == 1).all())
    with pytest.raises(ValueError, match="class 0 has 5 nodes"):
        per_class_split(torch.zeros(5, dtype=torch.long), seed, 5, 1)


def test_carve_and_stratified_folds():
    train, val = carve(100, 3, 0.1)
    assert len(val) == 10 and sorted(train + val) == list(range(100)) and carve(100, 3, 0.1) == (train, val)
    assert carve(100, 3, 0.1, limit=20)[1] == val[:2]
    with pytest.raises(ValueError, match="limit=1 leaves no training examples"):
        carve(100, 3, 0.5, limit=1)
    fold = stratified_folds(torch.tensor([0] * 30 + [1] * 70), 10, 0)
    assert all(torch.bincount(torch.tensor([0] * 30 + [1] * 70)[fold == k]).tolist() == [3, 7] for k in range(10))


# the step ---------------------------------------------------------------------------------------

class Linear(torch.nn.Module):
    """A model called as every harness model is: ``model(x, graph)`` (the graph unused)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, graph):
        return self.lin(x)


class Nothing:
    def to(self, device):
        return self


def test_a_shared_batch_of_one_process_steps_as_its_mean_loss():
    """A batch shared among processes (counts set) sums its share's loss times P / n; with the
    whole share on one process that is the mean loss: the same step as an unshared batch."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, generator=g), torch.randint(2, (10,), generator=g)
    rows = torch.tensor([1, 4, 5, 8])
    grads = []
    for counts in (None, {"train": 4}):
        torch.manual_seed(0)
        model = Linear()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        loss = train_epoch(model, opt, [Batch(x, Nothing(), y, {"train": rows}, counts)], CrossEntropyLoss(), device=CPU)
        grads.append((loss, model.lin.weight.detach().clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_evaluate_scores_each_split_on_its_rows_and_streams_like_one_batch():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 3, generator=g), torch.randint(2, (12,), generator=g)
    model = Linear()
    masks = {"val": torch.arange(12) < 5, "test": torch.arange(12) >= 5}

    class Whole(list):
        whole = True

    one = evaluate(model, Whole([Batch(x, Nothing(), y, masks)]), [Accuracy(), CrossEntropy()], ("val", "test"),
                   device=CPU)
    halves = [Batch(x[:6], Nothing(), y[:6], {k: v[:6] for k, v in masks.items()}),
              Batch(x[6:], Nothing(), y[6:], {k: v[6:] for k, v in masks.items()})]
    streamed = evaluate(model, halves, [Accuracy(), CrossEntropy()], ("val", "test"), device=CPU)
    assert one.keys() == streamed.keys() == {"val_acc", "val_loss", "test_acc", "test_loss"}
    for key in one:
        assert one[key] == pytest.approx(streamed[key], rel=1e-6)
    with torch.no_grad():
        expected = float((model(x, None)[masks["val"]].argmax(-1) == y[masks["val"]]).float().mean())
    assert one["val_acc"] == expected


def test_input_dropout_on_sparse_features_keeps_zeros_and_scales_the_rest():
    dense = torch.zeros(200, 50)
    dense[torch.rand(200, 50, generator=torch.Generator().manual_seed(0)) < 0.1] = 1.0
    csr = dense.to_sparse_csr()
    torch.manual_seed(0)
    dropped = drop_input(csr, 0.5).to_dense()
    assert bool((dropped[dense == 0] == 0).all())  # zeros stay zero
    kept = dropped[dense == 1]
    assert set(kept.unique().tolist()) <= {0.0, 2.0} and 0.4 < float((kept == 0).float().mean()) < 0.6
    assert drop_input(csr, 0.0) is csr
    with pytest.raises(ValueError, match="dense or sparse CSR"):
        drop_input(dense.to_sparse_coo(), 0.5)


def test_one_seed_prints_its_value_and_several_their_mean_and_spread():
    from graphattn.experiments.results import format_mean_std, markdown_table

    assert format_mean_std(0.817, 0.0, 1, scale=100) == "81.7"
    assert format_mean_std(0.817, 0.0123, 3, scale=100) == "81.7 ± 1.2"
    row = {"model": "graph", "runs": 1, "test_acc_mean": 0.817, "test_acc_std": 0.0, "val_acc_mean": 0.818,
           "epochs_mean": 142, "epoch_time_s": 0.07, "peak_mem_mb": 480, "parameters": 92231}
    table = markdown_table([row, {**row, "model": "gat", "runs": 10, "test_acc_std": 0.005}], Accuracy())
    assert "| graph | 81.7 | 81.8 | 142 |" in table and "| gat | 81.7 ± 0.5 |" in table and "92,231" in table
    mae = markdown_table([{**row, "runs": 3, "test_mae_mean": 0.1234567, "test_mae_std": 0.01, "val_mae_mean": 0.2}],
                         MeanAbsoluteError())
    assert "| test MAE | val MAE |" in mae and "| 0.1235 ± 0.0100 | 0.2000 |" in mae


def test_a_pass_over_several_batches_shows_batches_done_and_an_eta(capsys):
    g = torch.Generator().manual_seed(2)
    batches = [Batch(torch.randn(4, 3, generator=g), Nothing(), torch.randint(2, (4,), generator=g)) for _ in range(3)]
    model = Linear()
    train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, CrossEntropyLoss(), device=CPU,
                progress=True)
    err = capsys.readouterr().err
    assert "batches" in err and "/3 [" in err and "<" in err  # of 3, and tqdm's "elapsed<remaining"
    train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), batches[:1], CrossEntropyLoss(), device=CPU,
                progress=True)
    assert capsys.readouterr().err == ""  # one batch: nothing to show
