"""JSON and self-contained HTML reports: protocols recorded, nothing fetched from outside."""

from __future__ import annotations

import json
import math
import re

import pytest
from PIL import Image

from pixloom.errors import DataError, InvalidValue
from pixloom.metrics.report import (
    CategoryScore,
    EvalReport,
    Figure,
    MetricProtocol,
    read_log_series,
    write_html_report,
    write_json_report,
)


@pytest.fixture
def report() -> EvalReport:
    protocol = MetricProtocol(
        feature_network="inception-v3-pool3-bilinear299",
        num_real=10000,
        num_generated=10000,
        ema=True,
        seeds="0-9999",
        details={"resize": "bilinear"},
    )
    return EvalReport(
        title="shapes <gan>",
        model={"name": "shapes-gan", "sha256": "ab" * 32},
        figures=[
            Figure("fid", 12.5, protocol),
            Figure("kid", 0.01, protocol, std=0.002),
            Figure("psnr_y", math.inf, MetricProtocol(), unit="dB"),
        ],
        categories=[CategoryScore("colour", 8, 10), CategoryScore("position", 0, 10)],
    )


@pytest.fixture
def log_path(tmp_path):
    lines = [
        json.dumps({"step": s, "loss": 1.0 / s, "fid": 50.0 - s, "tag": "x"}) for s in (1, 2, 3)
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + '\n{"step": 4, "lo')  # truncated last line: ignored
    return path


def test_json_report_records_protocol_version_and_date(report, tmp_path):
    data = json.loads(write_json_report(report, tmp_path / "eval.json").read_text())
    assert data["pixloom_version"] and re.match(r"\d{4}-\d\d-\d\dT", data["created"])
    fid = data["figures"][0]
    assert fid["protocol"]["feature_network"] == "inception-v3-pool3-bilinear299"
    assert fid["protocol"]["ema"] is True and fid["protocol"]["num_generated"] == 10000
    assert data["figures"][2]["value"] == "inf"
    assert data["categories"][0]["low"] == pytest.approx(0.4902, abs=1e-4)


def test_html_report_is_self_contained(report, tmp_path, log_path):
    samples = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = write_html_report(
        report, tmp_path / "eval.html", samples=samples, captions=["a", "b"], log_path=log_path
    )
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert page.count("<svg") == 3  # category bars + loss + fid charts
    assert "shapes &lt;gan&gt;" in page and "<style>" in page
    external = re.findall(r'(?:src|href)="(?!data:)[^"]*"', page)
    assert external == [] and "<script" not in page
    with pytest.raises(InvalidValue, match="captions"):
        write_html_report(report, tmp_path / "x.html", samples=samples, captions=["a"])


def test_log_series_reads_numeric_fields_and_refuses_corrupt_lines(log_path, tmp_path):
    series = read_log_series(log_path)
    assert set(series) == {"loss", "fid"} and series["fid"] == [(1, 49.0), (2, 48.0), (3, 47.0)]
    assert set(read_log_series(log_path, ["fid"])) == {"fid"}
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text('{"step": 1, "loss": 1}\nnot json\n{"step": 2, "loss": 0.5}\n')
    with pytest.raises(DataError, match="line 2"):
        read_log_series(corrupt)
