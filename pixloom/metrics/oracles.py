"""Which oracle reads which dataset, and loading it from a shipped name or a directory."""

from __future__ import annotations

from pixloom.errors import InvalidValue

# dataset -> shipped oracle checkpoint name
ORACLE_FOR_DATA = {"shapes": "shapes-oracle", "digits": "digits-classifier"}


def oracle_name_for(data: str) -> str:
    """The shipped oracle for a built-in dataset spec."""
    base = data.split(":", 1)[0]
    if base not in ORACLE_FOR_DATA:
        raise InvalidValue(
            "data",
            data,
            f"a dataset with an oracle ({', '.join(ORACLE_FOR_DATA)}), or give --feature-weights",
        )
    return ORACLE_FOR_DATA[base]


def load_oracle(name_or_path: str, *, device: str = "cpu"):
    """Load a scene-parser or classifier checkpoint as its oracle wrapper."""
    from pixloom.metrics.classifier_oracle import ClassifierOracle
    from pixloom.metrics.shapes_oracle import ShapesOracle
    from pixloom.models.loading import load_model, resolve_checkpoint

    network, checkpoint = load_model(resolve_checkpoint(name_or_path))
    network = network.to(device)
    label = str(name_or_path).rstrip("/").split("/")[-1]
    if checkpoint.family == "scene-parser":
        return ShapesOracle(network, name=label, sha256=checkpoint.sha256)
    if checkpoint.family == "classifier":
        return ClassifierOracle(network, name=label, sha256=checkpoint.sha256)
    raise InvalidValue("oracle", name_or_path, "a scene-parser or classifier checkpoint")
