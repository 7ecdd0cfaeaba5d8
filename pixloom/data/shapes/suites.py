"""The built-in alignment suites: prompt files of SHAPES.md, one per category.

`single, binding, position, relation, count, heldout, paraphrase`. The files ship in
pixloom/suites/ and are rebuilt bit for bit by `python -m pixloom.data.shapes.suites`.
The paraphrase suite names colours and shapes with words that training captions never
contain; the words below are the benchmark's test vocabulary, not a table any model sees.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pixloom.data.shapes.captions import plural
from pixloom.data.shapes.prompts import validate_prompt_record
from pixloom.data.shapes.world import COLORS, DEFAULT_HELDOUT_PAIRS, POSITIONS, SHAPES, parse_pairs
from pixloom.errors import DataError, InvalidValue

SUITE_NAMES = ("single", "binding", "position", "relation", "count", "heldout", "paraphrase")
SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"
PROMPTS_PER_SUITE = 64
MAX_PROMPT_FILE_BYTES = 16 * 2**20

# Words absent from every training caption, for the paraphrase suite only.
COLOR_PARAPHRASES = {
    "red": ("crimson", "scarlet"), "green": ("emerald", "lime"), "blue": ("azure", "navy"),
    "yellow": ("golden", "lemon"), "purple": ("violet", "lilac"), "orange": ("tangerine", "amber"),
    "cyan": ("turquoise", "aqua"), "white": ("ivory", "snowy"),
}  # fmt: skip
SHAPE_PARAPHRASES = {
    "circle": ("disk", "round dot"), "square": ("box", "tile"), "triangle": ("wedge", "pyramid"),
    "diamond": ("rhombus", "lozenge"), "star": ("pentagram", "five-pointed star"),
    "cross": ("plus sign", "plus"),
}  # fmt: skip
RELATION_WORDS = {
    "left_of": "to the left of",
    "right_of": "to the right of",
    "above": "above",
    "below": "below",
}
COUNT_WORDS = {2: "two", 3: "three"}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _where(position: str) -> str:
    if " " in position:
        return f"in the {position} corner"
    return "in the center" if position == "center" else f"at the {position}"


def _pair(rng: random.Random, excluded) -> tuple[str, str]:
    while True:
        color, shape = rng.choice(tuple(COLORS)), rng.choice(SHAPES)
        if (color, shape) not in excluded:
            return color, shape


def _record(prompt: str, objects: list[dict], category: str, relations=None) -> dict[str, Any]:
    record: dict[str, Any] = {"prompt": prompt, "objects": objects}
    if relations:
        record["relations"] = relations
    record["category"] = category
    return validate_prompt_record(record)


def _single(rng, excluded) -> dict:
    color, shape = _pair(rng, excluded)
    if rng.random() < 0.5:
        size = rng.choice(("small", "large"))
        return _record(
            _article(f"{size} {color} {shape}"),
            [{"shape": shape, "color": color, "size": size}],
            "single",
        )
    return _record(_article(f"{color} {shape}"), [{"shape": shape, "color": color}], "single")


def _two_distinct(rng, excluded) -> tuple[tuple[str, str], tuple[str, str]]:
    while True:
        first, second = _pair(rng, excluded), _pair(rng, excluded)
        if first[0] != second[0] and first[1] != second[1]:
            return first, second


def _binding(rng, excluded) -> dict:
    (c1, s1), (c2, s2) = _two_distinct(rng, excluded)
    prompt = f"{_article(f'{c1} {s1}')} and {_article(f'{c2} {s2}')}"
    return _record(prompt, [{"shape": s1, "color": c1}, {"shape": s2, "color": c2}], "binding")


def _position(rng, excluded) -> dict:
    color, shape = _pair(rng, excluded)
    position = rng.choice(POSITIONS)
    where = (
        f"in the {position} corner"
        if " " in position
        else ("in the center" if position == "center" else f"at the {position}")
    )
    return _record(
        f"{_article(f'{color} {shape}')} {where}",
        [{"shape": shape, "color": color, "position": position}],
        "position",
    )


def _relation(rng, excluded) -> dict:
    (c1, s1), (c2, s2) = _two_distinct(rng, excluded)
    relation = rng.choice(tuple(RELATION_WORDS))
    prompt = f"{_article(f'{c1} {s1}')} {RELATION_WORDS[relation]} {_article(f'{c2} {s2}')}"
    objects = [{"shape": s1, "color": c1}, {"shape": s2, "color": c2}]
    return _record(prompt, objects, "relation", [{"type": relation, "a": 0, "b": 1}])


def _count(rng, excluded) -> dict:
    color, shape = _pair(rng, excluded)
    count = rng.choice((1, 2, 3))
    prompt = (
        _article(f"{color} {shape}")
        if count == 1
        else f"{COUNT_WORDS[count]} {color} {plural(shape)}"
    )
    return _record(prompt, [{"shape": shape, "color": color}] * count, "count")


def _heldout(rng, excluded) -> dict:
    color, shape = rng.choice(sorted(parse_pairs(DEFAULT_HELDOUT_PAIRS, "heldout_pairs")))
    spec = {"shape": shape, "color": color}
    words = f"{color} {shape}"
    if rng.random() < 0.5:
        spec["size"] = rng.choice(("small", "large"))
        words = f"{spec['size']} {words}"
    prompt = _article(words)
    if rng.random() < 0.6:
        spec["position"] = rng.choice(POSITIONS)
        prompt = f"{prompt} {_where(spec['position'])}"
    return _record(prompt, [spec], "heldout")


def _paraphrase(rng, excluded) -> dict:
    color, shape = _pair(rng, excluded)
    color_word, shape_word = (
        rng.choice(COLOR_PARAPHRASES[color]),
        rng.choice(SHAPE_PARAPHRASES[shape]),
    )
    template = rng.choice(("{}", "a picture of {}", "there is {} here", "{} on a dark background"))
    return _record(
        template.format(_article(f"{color_word} {shape_word}")),
        [{"shape": shape, "color": color}],
        "paraphrase",
    )


_BUILDERS = {
    "single": _single, "binding": _binding, "position": _position, "relation": _relation,
    "count": _count, "heldout": _heldout, "paraphrase": _paraphrase,
}  # fmt: skip


def build_suite(name: str, *, prompts: int = PROMPTS_PER_SUITE, seed: int = 0) -> list[dict]:
    """The `prompts` distinct records of built-in suite `name` (deterministic per seed)."""
    if name not in _BUILDERS:
        raise InvalidValue("suite", name, f"one of {', '.join(SUITE_NAMES)}")
    rng = random.Random(f"pixloom-suite:{name}:{seed}")
    excluded = parse_pairs(DEFAULT_HELDOUT_PAIRS, "heldout_pairs")
    records: dict[str, dict] = {}  # distinct prompts only: repeats would share seeds
    for _ in range(prompts * 100):
        record = _BUILDERS[name](rng, excluded)
        records.setdefault(record["prompt"], record)
        if len(records) == prompts:
            return list(records.values())
    raise DataError(f"suite {name} has fewer than {prompts} distinct prompts")


def read_prompt_file(path: str | Path) -> list[dict]:
    """Read and validate a JSON Lines prompt file (SHAPES.md), naming the bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompt file {path} does not exist")
    if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise DataError(f"prompt file {path} is larger than {MAX_PROMPT_FILE_BYTES} bytes")
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"prompt file {path} is not UTF-8: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not JSON ({error.msg})") from error
        records.append(validate_prompt_record(record, where=f"{path.name}:{number}"))
    if not records:
        raise DataError(f"prompt file {path} holds no prompts")
    return records


def suite_path(name: str) -> Path:
    """The shipped file of built-in suite `name`."""
    if name not in SUITE_NAMES:
        raise InvalidValue("suite", name, f"one of {', '.join(SUITE_NAMES)}")
    return SUITES_DIR / f"{name}.jsonl"


def write_suites(directory: Path = SUITES_DIR) -> list[Path]:
    """Rebuild every built-in suite file."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SUITE_NAMES:
        path = directory / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in build_suite(name)), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_suites():
        print(written)
