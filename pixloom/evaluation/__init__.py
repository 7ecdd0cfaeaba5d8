"""`pixloom eval`: run generators or renders through the metrics and write reports.

Sits beside pipelines: it reads datasets and oracles, and takes any generator as a plain
callable `generate(prompt, num_images, seed) -> list[PIL.Image]` built by the caller.
"""
