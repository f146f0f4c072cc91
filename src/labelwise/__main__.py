"""``python -m labelwise`` runs the command-line interface."""

import sys

from .commands.cli import main

sys.exit(main())
