"""Experiments: one file per task, each a config dataclass and ``run(config) -> metrics``."""
