"""Baseline of `validate`: iterating libyaml's parse events over an inventory's files.

    python -m benchmarks.yaml_events INVENTORY

`yaml.parse` with the C loader over `directory.yaml` and every `agencies/*.yaml`, each event
dropped as it comes: the floor of reading YAML with line numbers, which `validate` reads its
files with (`reconciler.inventory.yamlload`). Prints the number of events.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(folder: str) -> int:
    root = Path(folder)
    count = 0
    for path in [root / "directory.yaml", *sorted((root / "agencies").glob("*.yaml"))]:
        with open(path, "rb") as f:
            for _ in yaml.parse(f, Loader=yaml.CLoader):
                count += 1
    return count


if __name__ == "__main__":
    print(main(sys.argv[1]))
