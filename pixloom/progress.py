"""Progress bars for long work: live on a terminal, a line every 30 s when stderr is a file.

tqdm redraws every 0.1 s; written to a log file, that is thousands of carriage-return
updates per minute. The bars here keep the terminal behaviour and thin out the rest.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 30.0  # seconds between bar updates when stderr is not a terminal


def progress_bar(iterable: Any = None, **options: Any) -> tqdm:
    """tqdm(iterable, **options) with the redraw interval chosen for where stderr goes."""
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    options.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    return tqdm(iterable, **options)
