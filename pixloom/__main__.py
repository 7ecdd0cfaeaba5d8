"""`python -m pixloom` runs the CLI (torchrun uses this form)."""

import sys

from pixloom.cli.main import main

sys.exit(main())
