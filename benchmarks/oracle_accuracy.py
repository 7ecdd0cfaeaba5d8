"""Accuracy of pixloom's oracles on held-out data (the figures of their model cards).

python -m benchmarks.oracle_accuracy [--shapes DIR] [--digits DIR] [-n 2000]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.table import markdown_table
from pixloom.evaluation.oracle_accuracy import classifier_accuracy, scene_parser_accuracy
from pixloom.metrics.oracles import load_oracle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", default="shapes-oracle", help="scene parser name or checkpoint")
    parser.add_argument(
        "--digits", default="digits-classifier", help="digits classifier name or checkpoint"
    )
    parser.add_argument("-n", "--count", type=int, default=2000, help="test scenes per row")
    args = parser.parse_args()
    rows = []
    if args.shapes != "none":
        oracle = load_oracle(args.shapes)
        for resolution in (32, 64):
            for artifacts in (False, True):
                start = time.perf_counter()
                result = scene_parser_accuracy(
                    oracle, resolution=resolution, count=args.count, artifacts=artifacts
                )
                rows.append(
                    {
                        "oracle": "shapes",
                        "resolution": resolution,
                        "artifacts": artifacts,
                        **{
                            k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()
                        },
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
    if rows:
        print(markdown_table(rows))
    if args.digits != "none":
        result = classifier_accuracy(load_oracle(args.digits))
        print(
            f"\ndigits classifier: accuracy {result['accuracy']:.4f} on {result['images']} test images"
        )


if __name__ == "__main__":
    main()
