"""Training, split by concern: the epoch loop (:mod:`.loop`), checkpoints (:mod:`.checkpoints`),
seeds and RNG state (:mod:`.rng`), several processes (:mod:`.distributed`) and peak memory
(:mod:`.memory`). Everything is importable from here: ``from graphattn.train import fit``."""

from .checkpoints import CHECKPOINT_KEYS, CheckpointError, load_checkpoint
from .distributed import agree, all_reduce_sum, init_distributed, is_main, rank, world_size
from .loop import EpochRow, History, TrainConfig, fit
from .memory import peak_memory_mb, reset_peak_memory, start_peak
from .rng import set_seed

__all__ = ["TrainConfig", "EpochRow", "History", "fit", "load_checkpoint", "CheckpointError", "CHECKPOINT_KEYS",
           "set_seed", "peak_memory_mb", "reset_peak_memory", "start_peak", "rank", "world_size", "is_main",
           "init_distributed", "all_reduce_sum", "agree"]
