"""`pixloom eval alignment|fid|sr|tokenizer`: measure models with pixloom's oracles and protocols."""

from __future__ import annotations

import argparse
from pathlib import Path

from pixloom.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` and its measurements; flags come from the Request dataclasses."""
    from pixloom.evaluation.alignment import AlignmentRequest
    from pixloom.evaluation.distribution import DistributionRequest
    from pixloom.evaluation.reconstruction import ReconstructionRequest
    from pixloom.evaluation.sr import SrEvalRequest

    parser = subparsers.add_parser(
        "eval", help="measure alignment, FID/KID/IS/PR, PSNR/SSIM or a tokenizer"
    )
    kinds = parser.add_subparsers(dest="measure", metavar="MEASURE", required=True)
    for name, cls, handler, text in (
        (
            "alignment",
            AlignmentRequest,
            run_alignment,
            "text-image alignment on the shapes world (SHAPES.md)",
        ),
        (
            "fid",
            DistributionRequest,
            run_distribution,
            "FID, KID, IS and precision/recall with the real-vs-real floor",
        ),
        ("sr", SrEvalRequest, run_sr, "PSNR/SSIM on RGB and Y with bicubic from the same run"),
        (
            "tokenizer",
            ReconstructionRequest,
            run_tokenizer,
            "image tokenizer: reconstruction PSNR, FID vs originals, codebook usage",
        ),
    ):
        sub = kinds.add_parser(name, help=text, description=text)
        add_dataclass_arguments(sub, cls)
        sub.set_defaults(handler=handler)


def _generator(model: str):
    """A (prompts, seeds) -> images callable for a generator model, or None."""
    if model == "renders":
        return None
    import pixloom
    from pixloom.pipelines.text_to_image import draw_pairs

    pipeline = pixloom.load(model)
    return lambda prompts, seeds: draw_pairs(pipeline, prompts, seeds)


def _write(report, result, out: Path | None, samples=None, model: str | None = None) -> None:
    from pixloom.evaluation.runs import find_run_log
    from pixloom.metrics.report import write_html_report, write_json_report

    if out is None:
        return
    out = Path(out)
    write_json_report(report, out, details=result)  # the detailed result beside the figures

    log = find_run_log(model)  # the page plots the run's losses over steps when it has them
    html = write_html_report(report, out.with_suffix(".html"), samples=samples, log_path=log)
    print(f"report: {out}\npage: {html}")


def run_alignment(args: argparse.Namespace) -> int:
    """Score alignment and print accuracy per category with 95% intervals."""
    from pixloom.evaluation.alignment import AlignmentRequest, evaluate_alignment
    from pixloom.metrics.oracles import load_oracle

    request = dataclass_from_args(AlignmentRequest, args)
    outcome = evaluate_alignment(request, load_oracle(request.oracle), _generator(request.model))
    for part in ("renders", "renders_through_tokenizer", "generated"):
        if part in outcome.result:
            print(f"{part}:")
            for category, score in outcome.result[part]["categories"].items():
                low, high = score["ci95"]
                failures = ", ".join(f"{kind} {n}" for kind, n in score["failures"].items())
                print(
                    f"  {category:<11} {score['accuracy']:.3f}  [{low:.3f}, {high:.3f}]  n={score['images']}"
                    + (f"  failed: {failures}" if failures else "")
                )
    _write(outcome.report, outcome.result, request.out, outcome.samples, request.model)
    return 0


def run_distribution(args: argparse.Namespace) -> int:
    """FID/KID/IS/PR with the floor; prints one figure a line."""
    from pixloom.evaluation.distribution import DistributionRequest, evaluate_distribution
    from pixloom.metrics.oracles import load_oracle, oracle_name_for

    request = dataclass_from_args(DistributionRequest, args)
    if request.feature_weights is not None:
        from pixloom.metrics.inception import load_inception

        extractor = load_inception(request.feature_weights)
    else:
        extractor = load_oracle(request.oracle or oracle_name_for(request.data))
    report = evaluate_distribution(request, extractor, _generator(request.model))
    for figure in report.figures:
        spread = f" ± {figure.std:.4g}" if figure.std is not None else ""
        if figure.interval is not None:
            spread = f"  [{figure.interval[0]:.3f}, {figure.interval[1]:.3f}]"
        print(f"{figure.name:<26} {figure.value:.4g}{spread}")
    print(f"features: {extractor.name}; samples: {report.figures[0].protocol.num_real}")
    _write(report, None, request.out, model=request.model)
    return 0


def run_sr(args: argparse.Namespace) -> int:
    """Set5-style PSNR/SSIM table for the model and bicubic."""
    from pixloom.evaluation.sr import SrEvalRequest, evaluate_upscaler

    request = dataclass_from_args(SrEvalRequest, args)
    report, result = evaluate_upscaler(request)
    width = max(len(method) for method in result["mean"])
    print(f"{'method':<{width}} {'psnr_y':>8} {'ssim_y':>8} {'psnr_rgb':>9} {'ssim_rgb':>9}")
    for method, m in result["mean"].items():
        print(
            f"{method:<{width}} {m['psnr_y']:>8.3f} {m['ssim_y']:>8.4f}"
            f" {m['psnr_rgb']:>9.3f} {m['ssim_rgb']:>9.4f}"
        )
    _write(report, result, request.out, model=request.model)
    return 0


def run_tokenizer(args: argparse.Namespace) -> int:
    """Reconstruction PSNR, FID and codebook usage of a tokenizer; one figure a line."""
    from pixloom.evaluation.reconstruction import ReconstructionRequest, evaluate_reconstruction

    request = dataclass_from_args(ReconstructionRequest, args)
    report, result = evaluate_reconstruction(request)
    for figure in report.figures:
        print(f"{figure.name:<16} {figure.value:.4g} {figure.unit}".rstrip())
    print(
        f"images: {result['count']}; tokens per image: {result['tokens_per_image']}; "
        f"codebook: {result['codebook_size']}"
    )
    _write(report, result, request.out, model=request.model)
    return 0
