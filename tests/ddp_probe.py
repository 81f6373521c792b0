"""Launched by tests/test_distributed.py under torchrun: ``graphattn node ARGS`` in a process that
logs every file it moves into place (``os.replace``, how graphattn writes files) to
``$PROBE_LOG/rank<R>.log``; with ``$PROBE_FAIL_RANK`` that rank raises before its first epoch."""

import os
import sys

rank = os.environ.get("RANK", "0")
log = os.path.join(os.environ["PROBE_LOG"], f"rank{rank}.log")
replace = os.replace


def logged_replace(src, dst, *args, **kwargs):
    with open(log, "a") as f:
        f.write(f"{dst}\n")
    return replace(src, dst, *args, **kwargs)


os.replace = logged_replace
open(log, "a").close()
if os.environ.get("PROBE_FAIL_RANK") == rank:
    import graphattn.experiments.harness as harness

    def broken(*args, **kwargs):
        raise RuntimeError(f"rank {rank} fails on purpose")

    harness.train_epoch = broken

from graphattn.cli import main  # noqa: E402

sys.exit(main(["node", *sys.argv[1:]]))
