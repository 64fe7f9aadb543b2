"""`python -m shared` runs the `state-rosetta` command line."""

import sys

from .cli import main

sys.exit(main())
