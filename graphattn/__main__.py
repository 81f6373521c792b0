"""``python -m graphattn ...`` runs the command line (see :mod:`graphattn.cli`)."""

import sys

from .cli import main

sys.exit(main())
