"""Training presets: YAML files of TrainConfig fields in pixloom/presets (or any path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pixloom.errors import InvalidValue

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


def preset_names() -> list[str]:
    """Names of the presets shipped in pixloom/presets."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """The mapping of a shipped preset (by name) or of a YAML file (by path)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise InvalidValue(
            "preset", name_or_path, f"a YAML file or one of {', '.join(preset_names()) or 'none'}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidValue("preset", str(path), f"valid UTF-8 YAML ({error})") from error
    if not isinstance(data, dict):
        raise InvalidValue("preset", str(path), "a YAML mapping of TrainConfig fields")
    return data
