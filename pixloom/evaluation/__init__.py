"""`pixloom eval`: run generators or renders through the metrics and write reports.

Sits beside pipelines: it reads datasets and oracles, and takes any generator as a plain
callable `generate(prompt, num_images, seed) -> list[PIL.Image]` built by the caller.
"""

from collections.abc import Callable

Generate = Callable[[str, int, int], list]  # (prompt, num_images, seed) -> PIL images
RENDERS = "renders"  # the --model value that scores real renders instead of a generator
