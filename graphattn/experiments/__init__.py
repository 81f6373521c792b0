"""Experiments: one registry of tasks (:mod:`.registry`, the built-ins in :mod:`.tasks`) and one
training loop (:mod:`.harness`) that every task shares, with the plug points a new task picks
from: losses and metrics (:mod:`.metrics`), splits (:mod:`.splits`), result rows and tables
(:mod:`.results`), the seed protocol (:mod:`.seeds`), config pieces (:mod:`.pieces`). Each task
keeps only its own specifics: node classification (``node_*``), sequence classification
(``sequence_*``), graph classification (``graph_*``) and the pattern study (``study*``)."""
