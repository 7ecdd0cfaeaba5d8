"""Pipelines: one file per task, each with a Request dataclass and a callable pipeline.

upscale.py (super-resolution: UpscaleRequest, UpscalePipeline), upscale_files.py (the
file and folder job behind `pixloom upscale`), tiling.py (seam-free tiled inference).
"""
