"""Losses and metrics: what a task trains on and what it is judged by (its :class:`Objective`).

A **loss** is called ``loss(out, y, reduction="mean")`` on the model's outputs and the labels of
the rows being trained. A **metric** has two forms (as torchmetrics has ``update`` / ``compute``
and a functional twin):

* ``value(out, y)``: the metric of one tensor of predictions, reduced by torch in the outputs'
  dtype; used when a split is scored in one forward on one process (the whole graph);
* ``sums(out, y) -> (numerator, count)``: float64 sums that add up over batches and processes,
  the metric being ``sum(numerator) / sum(count)``; ``None`` for a metric that does not
  decompose (average precision), whose predictions are gathered and scored by ``value``.

Metrics are scored per split under ``<split>_<name>`` (``val_acc``, ``test_mae``). A new task
picks or writes its loss and metrics; nothing else in the harness changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Metric", "Accuracy", "CrossEntropy", "MeanAbsoluteError", "AveragePrecision", "CrossEntropyLoss",
           "L1Loss", "Loss", "MultiLabelBCELoss", "Objective", "classification", "average_precision"]


class Metric:
    """A metric of predictions ``out`` against labels ``y`` (see the module docstring).

    Attributes:
        name: the key suffix (``val_<name>``).
        higher_is_better: whether a larger value is better (what early stopping on it maximises).
        percent: shown as a percentage in tables.
        additive: ``sums`` gives its float64 sums (else predictions are gathered for ``value``).
    """

    name: str = ""
    higher_is_better: bool = True
    percent: bool = False
    additive: bool = True

    def value(self, out: Tensor, y: Tensor) -> float:
        raise NotImplementedError

    def sums(self, out: Tensor, y: Tensor) -> tuple[float, float] | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """The share of rows whose largest output is the label: ``mean_i [argmax_c out_ic = y_i]``."""

    name, higher_is_better, percent = "acc", True, True

    def value(self, out: Tensor, y: Tensor) -> float:
        return float((out.argmax(dim=-1) == y).float().mean())

    def sums(self, out: Tensor, y: Tensor) -> tuple[float, float]:
        return float(int((out.argmax(dim=-1) == y).sum())), float(y.size(0))


class CrossEntropy(Metric):
    """The mean cross-entropy of the softmax of ``out`` against the labels (no smoothing):
    ``-mean_i log softmax(out_i)[y_i]``."""

    name, higher_is_better = "loss", False

    def value(self, out: Tensor, y: Tensor) -> float:
        return float(F.cross_entropy(out, y))

    def sums(self, out: Tensor, y: Tensor) -> tuple[float, float]:
        return float(F.cross_entropy(out, y, reduction="sum")), float(y.size(0))


class MeanAbsoluteError(Metric):
    """``mean_i |out_i - y_i|`` over every target (regression; ZINC reports it)."""

    name, higher_is_better = "mae", False

    def value(self, out: Tensor, y: Tensor) -> float:
        return float((out.reshape(y.shape) - y).abs().mean())

    def sums(self, out: Tensor, y: Tensor) -> tuple[float, float]:
        return float((out.reshape(y.shape) - y).abs().double().sum()), float(y.numel())


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Average precision of one binary task, as scikit-learn's ``average_precision_score``:
    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds in decreasing order,
    ``P_k`` and ``R_k`` the precision and recall of predicting positive at scores ``>=`` the k-th
    threshold (tied scores enter together), ``R_0 = 0``. ``labels`` are 0 / 1; NaN if none is 1."""
    order = torch.argsort(scores.double(), descending=True, stable=True)
    s, t = scores.double()[order], labels.double()[order]
    last = torch.ones_like(s, dtype=torch.bool)  # the last row of each group of tied scores
    last[:-1] = s[1:] != s[:-1]
    tp = torch.cumsum(t, 0)[last]
    seen = torch.nonzero(last).flatten().double() + 1
    precision, recall = tp / seen, tp / t.sum()
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


class AveragePrecision(Metric):
    """Multi-label average precision as the Long Range Graph Benchmark (and OGB's ``eval_ap``)
    computes it: for each label column with at least one positive and one negative, the
    :func:`average_precision` of its scores over the rows whose label is not NaN; then the mean
    over those columns. ``out`` holds logits (AP only ranks them), ``y`` 0 / 1 / NaN."""

    name, higher_is_better, percent, additive = "ap", True, True, False

    def value(self, out: Tensor, y: Tensor) -> float:
        out, y = out.reshape(y.shape).detach().cpu(), y.detach().cpu()
        scores = []
        for column in range(y.size(1)):
            labelled = ~torch.isnan(y[:, column])
            t = y[labelled, column]
            if bool((t == 1).any()) and bool((t == 0).any()):
                scores.append(average_precision(out[labelled, column], t))
        if not scores:
            raise ValueError("average precision needs a label column with a positive and a negative row")
        return sum(scores) / len(scores)


# ---------------------------------------------------------------------------------- losses


class Loss(Protocol):
    """A training loss: ``loss(out, y)``, the mean over the targets, or their sum with
    ``reduction="sum"`` (a process's share of a global batch)."""

    def __call__(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor: ...


@dataclass(frozen=True)
class CrossEntropyLoss:
    """Cross-entropy against labels smoothed by ``label_smoothing`` = ``eps``: the target puts
    ``1 - eps + eps / K`` on the label and ``eps / K`` on each of the ``K`` classes."""

    label_smoothing: float = 0.0

    def __call__(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        return F.cross_entropy(out, y, reduction=reduction, label_smoothing=self.label_smoothing)


@dataclass(frozen=True)
class L1Loss:
    """``|out - y|`` (graph regression trains on the MAE it is judged by)."""

    def __call__(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        return F.l1_loss(out.reshape(y.shape), y.to(out.dtype), reduction=reduction)


@dataclass(frozen=True)
class MultiLabelBCELoss:
    """Binary cross-entropy on the logits of each label column, NaN labels left out (as LRGB trains)."""

    def __call__(self, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        out = out.reshape(y.shape)
        labelled = ~torch.isnan(y)
        return F.binary_cross_entropy_with_logits(out[labelled], y[labelled].to(out.dtype), reduction=reduction)


@dataclass(frozen=True)
class Objective:
    """What a task optimises and how its epochs are judged.

    Args:
        loss: the training loss (:class:`CrossEntropyLoss`, :class:`L1Loss`, ...).
        metrics: scored on validation every epoch and on the test split at the end.
        monitor: the name of the metric whose validation value picks the best epoch (its
            ``higher_is_better`` says which way).
        tie_break: a metric (smaller is better) that decides between epochs with an equal
            ``monitor``, or ``None``. Accuracy on a few hundred validation nodes ties often;
            GAT's protocol then looks at the validation loss.
    """

    loss: Loss
    metrics: tuple[Metric, ...]
    monitor: str
    tie_break: str | None = None

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        for role, name in (("monitor", self.monitor), ("tie_break", self.tie_break)):
            if name is not None and name not in names:
                raise ValueError(f"{role}={name!r} must name one of the metrics {names}")

    @property
    def main(self) -> Metric:
        """The monitored metric."""
        return next(m for m in self.metrics if m.name == self.monitor)


def classification(label_smoothing: float = 0.0, tie_break: bool = False) -> Objective:
    """Cross-entropy training judged by accuracy (and the cross-entropy itself as ``loss``)."""
    return Objective(CrossEntropyLoss(label_smoothing), (Accuracy(), CrossEntropy()), "acc",
                     "loss" if tie_break else None)

