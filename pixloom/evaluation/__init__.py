"""`pixloom eval`: run generators or renders through the metrics and write reports.

Sits beside pipelines: it reads datasets and oracles, and takes any generator as a plain
callable `generate(prompts, seeds) -> list[PIL.Image]` (one image per pair) built by the
caller; `generate_images` feeds it in batches.
"""

from collections.abc import Callable

from pixloom.progress import progress_bar

Generate = Callable[[list[str], list[int]], list]  # (prompts, seeds) -> one PIL image per pair
RENDERS = "renders"  # the --model value that scores real renders instead of a generator
BATCH = 64  # (prompt, seed) pairs per generate call


def generate_images(generate: Generate, prompts: list[str], seeds: list[int]) -> list:
    """generate over every (prompt, seed) pair, BATCH pairs per call, with a progress bar."""
    images: list = []
    with progress_bar(total=len(prompts), desc="generate", unit="image") as bar:
        for start in range(0, len(prompts), BATCH):
            batch = generate(prompts[start : start + BATCH], seeds[start : start + BATCH])
            images += batch
            bar.update(len(batch))
    return images
