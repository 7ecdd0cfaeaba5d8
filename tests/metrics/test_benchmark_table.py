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


def test_paraphrase_llm_benchmark_scores_every_template_on_a_tiny_causal_lm(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    import torch

    from benchmarks.paraphrase_llm import CONTENT_FREE, answers, completion_table, main

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "is", "of", "n", "/"]
    words += ["red", "blue", "green", "circle", "square", "crimson", "colour", "kind"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
    config = transformers.LlamaConfig(
        vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    table = completion_table(model, tokenizer, ["crimson", CONTENT_FREE],
                             ["red", "blue", "green"], "the colour {w} is a kind of")  # fmt: skip
    assert table.shape == (2, 3) and (table < 0).all()  # log-likelihoods of the answers
    scores = answers(table, table[1])
    assert torch.allclose(scores.exp().sum(1), torch.ones(2))
    assert torch.allclose(scores[1], torch.full((3,), -torch.log(torch.tensor(3.0))))  # no prior
    assert torch.equal(answers(table).argmax(1), table.argmax(1))
    main(["--llm", str(tmp_path)])
    table = capsys.readouterr().out
    assert table.count("/16 |") == 9 and table.count("/12 |") == 9  # 4 templates x 2 + summed
    with pytest.raises(SystemExit):
        main(["--llm", str(tmp_path / "missing")])
    assert "--llm" in capsys.readouterr().err
