"""benchmarks.table: markdown tables and interleaved side-by-side timing."""

from __future__ import annotations

import pytest

from benchmarks.table import markdown_table, time_side_by_side
from pixloom.errors import InvalidValue


def test_markdown_table_formats_floats_and_missing_cells():
    table = markdown_table([{"name": "a|b", "x": 1.23456}, {"name": "c", "y": 2}])
    assert table.splitlines() == [
        "| name | x | y |",
        "| --- | --- | --- |",
        "| a\\|b | 1.235 |  |",
        "| c |  | 2 |",
    ]


def test_time_side_by_side_interleaves_and_reports_ratio():
    calls = []

    def candidate(name, work):
        def run():
            calls.append(name)
            sum(range(work))

        return run

    rows = time_side_by_side(
        {"slow": candidate("slow", 200_000), "fast": candidate("fast", 2_000)},
        repeats=5,
        warmup=1,
    )
    assert [row["name"] for row in rows] == ["slow", "fast"]
    assert rows[0]["ratio"] == 1.0 and rows[1]["ratio"] > 3.0
    assert calls[:4] == ["slow", "fast", "fast", "slow"]  # order rotates each round
    assert len(calls) == 12 and rows[1]["repeats"] == 5
    with pytest.raises(InvalidValue, match="baseline"):
        time_side_by_side({"a": lambda: None}, baseline="b")


def test_best_of_benchmark_reads_each_models_own_draft_counts():
    from benchmarks.best_of import parse_model

    assert parse_model("shapes-ar:8", [1, 4]) == ("shapes-ar", [8])
    assert parse_model("shapes-maskgit:1,2,4", [1]) == ("shapes-maskgit", [1, 2, 4])
    assert parse_model("shapes-ar", [1, 4]) == ("shapes-ar", [1, 4])
    assert parse_model("runs/a:b/model", [2]) == ("runs/a:b/model", [2])  # a path, not counts
    assert parse_model("runs/a:1,,2", [2]) == ("runs/a:1,,2", [2])  # not a list of counts


def test_best_of_benchmark_batch_prompts_span_the_chosen_suites():
    from benchmarks.best_of import PROMPT, batch_prompts
    from pixloom.evaluation.alignment import load_prompts

    assert batch_prompts(None, 3) == [PROMPT] * 3
    relation = [record["prompt"] for record in load_prompts("relation")]
    assert batch_prompts("relation", 4) == relation[:: len(relation) // 4][:4]
    every = batch_prompts("all", 14)  # two from each of the 7 suites
    categories = {r["prompt"]: r["category"] for r in load_prompts("all")}
    assert len({categories[p] for p in every}) == 7
    with pytest.raises(InvalidValue, match="prompts"):
        batch_prompts("no-such-suite", 4)
