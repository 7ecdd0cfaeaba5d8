"""Evaluation reports: a JSON file where every figure carries its protocol, and an HTML page.

The HTML page is self-contained (inline CSS, images as base64 PNG, charts as inline SVG),
so it opens from disk with no server. A figure without its protocol (sample counts,
feature network, EMA or raw weights, seeds) cannot be compared across runs or tools, so
`Figure` requires one.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from pixloom.errors import DataError, require
from pixloom.metrics.charts import svg_bar_chart, svg_line_chart
from pixloom.metrics.intervals import wilson_interval


def _utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class MetricProtocol:
    """How a figure was measured; written beside it in every report."""

    feature_network: str | None = None  # FeatureExtractor.name; None for PSNR/SSIM etc.
    num_real: int | None = None  # reference samples
    num_generated: int | None = None  # generated samples
    ema: bool | None = None  # generated with EMA weights (None: not a generator figure)
    seeds: str | None = None  # e.g. "0-9999": image i drawn from seed start + i
    details: dict = field(default_factory=dict)  # anything else: splits, subset size, resize


@dataclass
class Figure:
    """One measured number with its protocol (and spread or interval when it has one)."""

    name: str  # "fid", "kid", "inception_score", "precision", "psnr_y", ...
    value: float
    protocol: MetricProtocol
    std: float | None = None  # over KID subsets / IS splits
    interval: tuple[float, float] | None = None  # e.g. Wilson 95% for accuracies
    unit: str = ""


@dataclass
class CategoryScore:
    """Accuracy of one category of an alignment suite with its Wilson 95% interval."""

    category: str
    successes: int
    trials: int
    accuracy: float = field(init=False)
    low: float = field(init=False)
    high: float = field(init=False)

    def __post_init__(self):
        self.low, self.high = wilson_interval(self.successes, self.trials)  # validates counts
        self.accuracy = self.successes / self.trials


@dataclass
class EvalReport:
    """Everything one `pixloom eval` run measured, with what was measured and when."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    categories: list[CategoryScore] = field(default_factory=list)
    model: dict = field(default_factory=dict)  # name, path, family, sha256, step
    created: str = field(default_factory=_utc_now)


def report_to_dict(report: EvalReport) -> dict:
    """The JSON content of a report, stamped with the pixloom version."""
    from pixloom import __version__

    data = dataclasses.asdict(report)
    data["pixloom_version"] = __version__
    for figure in data["figures"]:  # JSON has no inf/nan: PSNR of identical images is inf
        if not math.isfinite(figure["value"]):
            figure["value"] = str(figure["value"])
    return data


def _write_text(path: Path, text: str) -> Path:
    """Write text via a temporary sibling and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def write_json_report(report: EvalReport, path: str | Path, *, details: dict | None = None) -> Path:
    """Write the report as indented JSON (plus a "details" entry when given); returns the path."""
    data = report_to_dict(report)
    if details is not None:
        data["details"] = details
    return _write_text(Path(path), json.dumps(data, indent=2) + "\n")


def read_log_series(log_path: str | Path, keys: list[str] | None = None) -> dict:
    """Numeric series {key: [(step, value)]} from a run's log.jsonl (lines with a "step").

    Args:
        keys: which fields to read; None reads every numeric field except "step".
    A truncated last line (a run killed mid-write) is ignored; a corrupt line elsewhere
    raises DataError naming the line.
    """
    lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    series: dict[str, list[tuple[float, float]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise DataError(f"{log_path}: line {number} is not JSON ({error.msg})") from error
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), (int, float)):
            continue
        for key, value in entry.items():
            wanted = key in keys if keys is not None else key != "step"
            if wanted and isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(key, []).append((entry["step"], float(value)))
    return series


def _png_data_uri(image) -> str:
    """A PIL image as a data: URI holding a base64 PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.protocol{font-size:0.85em;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;text-align:center;font-size:0.8em}
figure img{image-rendering:pixelated;width:128px;height:auto;border:1px solid #ddd}
"""


def _figure_rows(figures: list[Figure]) -> str:
    """HTML table rows: name, value (± std or interval), protocol."""
    rows = []
    for figure in figures:
        value = f"{figure.value:.4g}{(' ' + figure.unit) if figure.unit else ''}"
        if figure.std is not None:
            value += f" ± {figure.std:.3g}"
        if figure.interval is not None:
            value += f" [{figure.interval[0]:.3g}, {figure.interval[1]:.3g}]"
        protocol = json.dumps(dataclasses.asdict(figure.protocol), sort_keys=True)
        rows.append(
            f"<tr><td>{html.escape(figure.name)}</td><td>{html.escape(value)}</td>"
            f'<td class="protocol">{html.escape(protocol)}</td></tr>'
        )
    return "".join(rows)


def _samples_html(samples: list, captions: list[str] | None) -> str:
    """A flex grid of embedded sample images with their captions."""
    require(
        captions is None or len(captions) == len(samples),
        "captions",
        None if captions is None else len(captions),
        f"one caption per sample ({len(samples)})",
    )
    cells = []
    for index, image in enumerate(samples):
        caption = html.escape(captions[index]) if captions else str(index)
        cells.append(
            f'<figure><img src="{_png_data_uri(image)}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return '<h2>Samples</h2><div class="grid">' + "".join(cells) + "</div>"


def write_html_report(
    report: EvalReport,
    path: str | Path,
    *,
    samples: list | None = None,
    captions: list[str] | None = None,
    log_path: str | Path | None = None,
    log_keys: list[str] | None = None,
) -> Path:
    """Write a self-contained HTML page: figures with protocols, category bars, samples, curves.

    Args:
        samples: PIL images embedded as base64 PNG (keep it to a few dozen).
        captions: one per sample (e.g. the prompt).
        log_path: a run's log.jsonl; each of log_keys (default: every numeric field) gets a
            metrics-over-steps chart.
    """
    data = report_to_dict(report)
    body = [f"<h1>{html.escape(report.title)}</h1>"]
    meta = {"created": report.created, "pixloom_version": data["pixloom_version"], **report.model}
    body.append(
        "<table>"
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in meta.items()
        )
        + "</table>"
    )
    if report.figures:
        body.append(
            "<h2>Figures</h2><table><tr><th>metric</th><th>value</th>"
            "<th>protocol</th></tr>" + _figure_rows(report.figures) + "</table>"
        )
    if report.categories:
        bars = [(c.category, c.accuracy, c.low, c.high) for c in report.categories]
        body.append(
            "<h2>Per category</h2>" + svg_bar_chart(bars, title="accuracy with Wilson 95% interval")
        )
    if samples:
        body.append(_samples_html(samples, captions))
    if log_path is not None:
        series = read_log_series(log_path, log_keys)
        body.append("<h2>Over training steps</h2>")
        body.extend(svg_line_chart({key: values}, title=key) for key, values in series.items())
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return _write_text(Path(path), page)
