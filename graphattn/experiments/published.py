"""Published numbers to print beside ours, each with its source and where it was checked.

Only numbers that could be checked against a copy of the paper's results (the paper, its
repository, or a listing of the paper's own results) are here; ``checked`` says which. A number
that could not be checked is left out, and :data:`NOT_CHECKED` says so for the tables.
Accuracies and average precisions are fractions, as the metrics compute them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import Metric

__all__ = ["Published", "PUBLISHED", "NOT_CHECKED", "published_table"]


@dataclass(frozen=True)
class Published:
    """One published result: ``value`` (± ``std``, ``None`` if the source gives none) of ``model``."""

    model: str
    value: float
    std: float | None
    source: str
    checked: str


_MIRROR = "the offline mirror's README (shared/datasets/README.md), which quotes the paper"
_GPS = "Rampášek et al. 2022, GraphGPS, NeurIPS"
_BGNN = "Dwivedi et al. 2023, benchmarking-gnns, JMLR (500k parameters)"
_LRGB = "Dwivedi et al. 2022, LRGB, NeurIPS D&B"
_EXP = "Shirzad et al. 2023, Exphormer, ICML (60/20/20 random split)"
_EXP_CHECK = "Papers with Code, the paper's own results (paperswithcode.com/paper/exphormer-sparse-transformers-for-graphs)"
_LUO = "Luo et al. 2024, Classic GNNs are strong baselines, NeurIPS, Table 2 (tuned, one fixed 60/20/20 split)"
_LUO_CHECK = "hyper.ai's page of the paper (arXiv 2406.08993), which lists its benchmark results"

#: dataset -> published results on it.
PUBLISHED: dict[str, tuple[Published, ...]] = {
    "ZINC": (
        Published("GraphGPS (GINE + Transformer, RWSE)", 0.070, 0.004, _GPS, _MIRROR),
        Published("GatedGCN-E", 0.282, None, _BGNN, _MIRROR),
        Published("GCN", 0.367, None, _BGNN, _MIRROR),
        Published("GIN", 0.526, None, _BGNN, _MIRROR),
        Published("best GNN+ (tuned GCN / GIN / GatedGCN)", 0.065, None,
                  "Luo et al. 2025, Can classic GNNs be strong baselines for graph-level tasks?, ICML",
                  "wizwand.com's page of the paper (arXiv 2502.09263); which model and the spread not checked"),
    ),
    "Peptides-func": (
        Published("GraphGPS (GatedGCN + Transformer, LapPE)", 0.6535, None, _GPS, _MIRROR),
        Published("SAN + LapPE", 0.6439, None, _LRGB, _MIRROR),
        Published("Transformer + LapPE", 0.6326, None, _LRGB, _MIRROR),
        Published("GCN", 0.5930, None, _LRGB, _MIRROR),
        Published("GatedGCN", 0.5864, None, _LRGB, _MIRROR),
        Published("GINE", 0.5498, None, _LRGB, _MIRROR),
        Published("GCN, tuned", 0.6860, None, "Tönshoff et al. 2023, Where did the gap go?, TMLR", _MIRROR),
    ),
    "Amazon-Computers": (
        Published("Exphormer", 0.9147, 0.0017, _EXP, _EXP_CHECK),
        Published("GCN, tuned", 0.9399, 0.0012, _LUO, _LUO_CHECK),
        Published("GAT, tuned", 0.9409, 0.0037, _LUO, _LUO_CHECK),
    ),
    "Amazon-Photo": (
        Published("Exphormer", 0.9535, 0.0022, _EXP, _EXP_CHECK),
        Published("NAGphormer", 0.9549, None, "Chen et al. 2023, NAGphormer, ICLR (60/20/20 random split)",
                  "wizwand.com's page of the paper (arXiv 2206.04910); the spread not checked"),
        Published("GCN, tuned", 0.9610, 0.0046, _LUO, _LUO_CHECK),
    ),
    "Coauthor-CS": (
        Published("Exphormer", 0.9493, 0.0046, _EXP, _EXP_CHECK),
    ),
    "Coauthor-Physics": (
        Published("Exphormer", 0.9689, 0.0009, _EXP, _EXP_CHECK),
    ),
}

#: What the tables say about numbers left out.
NOT_CHECKED = {
    "Amazon-Computers": "NAGphormer's number could not be checked here.",
    "Amazon-Photo": "Luo et al.'s tuned GAT could not be checked here.",
    "Coauthor-CS": "NAGphormer's and Luo et al.'s tuned GCN / GAT numbers could not be checked here.",
    "Coauthor-Physics": "NAGphormer's and Luo et al.'s tuned GCN / GAT numbers could not be checked here.",
}


def published_table(dataset: str, metric: Metric) -> str:
    """A markdown table of the published results on ``dataset`` in ``metric``'s units (a
    percentage for accuracy and AP), with their sources; empty if none are known."""
    rows = PUBLISHED.get(dataset, ())
    if not rows:
        return ""
    scale, digits = (100.0, 2) if metric.percent else (1.0, 3)
    lines = ["| published | test | source | checked against |", "| --- | --- | --- | --- |"]
    for r in rows:
        value = f"{scale * r.value:.{digits}f}" + ("" if r.std is None else f" ± {scale * r.std:.{digits}f}")
        lines.append(f"| {r.model} | {value} | {r.source} | {r.checked} |")
    note = NOT_CHECKED.get(dataset)
    return "\n".join(lines) + (f"\n\n{note}" if note else "")
