"""`pixloom eval sr`: PSNR/SSIM of an upscaler on a folder of HR images, bicubic beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pixloom.errors import require
from pixloom.metrics.report import EvalReport, Figure, MetricProtocol
from pixloom.metrics.sr_protocol import evaluate_sr


@dataclass
class SrEvalRequest:
    """What `pixloom eval sr` measures."""

    hr: Path = field(metadata={"help": "folder of high-resolution reference images (e.g. Set5)"})
    scale: int = field(default=4, metadata={"help": "2, 3 or 4"})
    model: str = field(
        default="bicubic",
        metadata={"help": "nearest|bilinear|bicubic|lanczos, a shipped SR model or a checkpoint"},
    )
    tile: int | None = field(
        default=None, metadata={"help": "tile side for the network (None: whole image)"}
    )
    self_ensemble: bool = field(
        default=False, metadata={"help": "average over the 8 flips/rotations (EDSR+)"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "report.json to write (an .html is written beside it)"}
    )

    def __post_init__(self):
        require(Path(self.hr).is_dir(), "hr", str(self.hr), "an existing folder of HR images")
        require(self.scale in (2, 3, 4), "scale", self.scale, "2, 3 or 4")


def evaluate_upscaler(request: SrEvalRequest) -> tuple[EvalReport, dict]:
    """Run the SR protocol (../shared/data/README.md) for the requested model: (report, details)."""
    from pixloom.pipelines.upscale import UpscalePipeline

    pipeline = UpscalePipeline(request.model, scale=request.scale)

    def upscale(image: Image.Image, scale: int) -> Image.Image:
        return pipeline(image, tile=request.tile, self_ensemble=request.self_ensemble).images[0]

    # The protocol always adds its own bicubic column; the pipeline's baseline keeps a distinct label.
    label = f"{request.model} (pixloom upscale)" if request.model == "bicubic" else request.model
    label += " + self-ensemble" if request.self_ensemble and pipeline.network is not None else ""
    result = evaluate_sr(upscale, Path(request.hr), request.scale, name=label)
    protocol = MetricProtocol(details=result["protocol"])
    figures = [
        Figure(f"{method}_{metric}", value, protocol, unit="dB" if "psnr" in metric else "")
        for method, means in result["mean"].items()
        for metric, value in means.items()
    ]
    report = EvalReport(
        title=f"super-resolution x{request.scale}: {request.model}",
        figures=figures,
        model={"name": request.model, "sha256": pipeline.sha256},
    )
    return report, result
