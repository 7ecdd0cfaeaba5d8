"""Child process for the signal tests: trains the toy classifier until told to stop.

Usage: child_train.py OUT MODE, MODE "slow-save" (every fsync sleeps, to be killed mid-save)
or "long" (many steps, to be stopped by SIGTERM).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toy import ToyDataset, toy_config  # noqa: E402

from pixloom.training.engine import train  # noqa: E402


def main() -> None:
    out, mode = sys.argv[1], sys.argv[2]
    if mode == "slow-save":
        real_fsync = os.fsync

        def slow_fsync(descriptor):
            time.sleep(0.05)
            real_fsync(descriptor)

        os.fsync = slow_fsync
        config = toy_config(out, steps=100_000, checkpoint_every=2)
    else:
        config = toy_config(out, steps=100_000, checkpoint_every=100_000, log_every=1)
    result = train(config, dataset=ToyDataset())
    print(f"interrupted={result.interrupted} step={result.step}", flush=True)


if __name__ == "__main__":
    main()
