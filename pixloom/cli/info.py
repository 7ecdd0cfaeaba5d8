"""`pixloom info PATH`: what a checkpoint, a pixloom PNG or a weights file holds."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` sub-command."""
    parser = subparsers.add_parser(
        "info",
        help="show a checkpoint's family, config, files and sha256, or a PNG's metadata",
        description="Show what a checkpoint directory, a pixloom PNG or a weights file holds. "
        "Reads headers and metadata only; never unpickles.",
    )
    parser.add_argument("path", help="checkpoint directory, PNG, or weights file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip recomputing sha256 sums (sizes are still checked)",
    )
    parser.set_defaults(handler=run)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _print_json_block(title: str, value: Any) -> None:
    print(f"{title}:")
    for line in json.dumps(value, indent=2, sort_keys=True).splitlines():
        print(f"  {line}")


def _print_checkpoint(info: dict[str, Any]) -> None:
    verified = "verified" if info["verified"] else "not verified"
    print(f"checkpoint: {info['path']}")
    print(f"family:     {info['family']}")
    print(f"sha256:     {info['sha256']} ({verified})")
    print(f"parameters: {info['parameters']:,} in {info['tensors']} tensors")
    print(f"training state: {'yes' if info['has_training_state'] else 'no'}")
    print("files:")
    for name, size in info["files"].items():
        print(f"  {name:<28} {_size(size)}")
    config = {k: v for k, v in info["config"].items() if k != "provenance"}
    _print_json_block("config", config)
    _print_json_block("provenance", info["provenance"])


def _print_weights(info: dict[str, Any]) -> None:
    print(f"weights file: {info['path']} ({info['format']}, {_size(info['size'])})")
    for name, entry in info.get("tensors", {}).items():
        print(f"  {name:<40} {entry['dtype']:<5} {entry['shape']}")


def run(args: argparse.Namespace) -> int:
    """Describe args.path on stdout."""
    from pixloom.api import describe

    info = describe(args.path, verify=args.verify)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    elif info["kind"] == "checkpoint":
        _print_checkpoint(info)
    elif info["kind"] == "png":
        if info["metadata"] is None:
            print(f"{info['path']}: a PNG without pixloom metadata")
        else:
            _print_json_block(f"{info['path']} metadata", info["metadata"])
    else:
        _print_weights(info)
    return 0
