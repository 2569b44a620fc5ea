"""A crowded meeting context for choosing on dev: the dev invitation, then every name of the
meetings training sentences as more attendees, accounts and offices, most of them never said
in dev. It measures what a room's names cost where they are not said ("Can you" must not
become "Kenya"): the dev names are still there, among about 130 that are not.

    python tools/make_crowded_context.py   # writes datasets/meetings/dev.crowded.txt
"""

from __future__ import annotations

import json
from pathlib import Path

MEETINGS = Path(__file__).resolve().parent.parent / "datasets" / "meetings"


def main() -> None:
    kinds: dict[str, dict[str, None]] = {"Peop": {}, "Org": {}, "Loc": {}}
    for sentence in json.loads((MEETINGS / "train.json").read_text()):
        for e in sentence["entities"]:
            kinds.setdefault(e["type"], {})[" ".join(sentence["tokens"][e["start"]:e["end"]])] = None
    invitation = (MEETINGS / "dev.invitation.txt").read_text().rstrip()
    crowded = (f"{invitation}\n\nForwarded to the wider group. Also invited: "
               f"{', '.join(kinds['Peop'])}.\nOther accounts on the list: "
               f"{', '.join(kinds['Org'])}.\nRegional offices: {', '.join(kinds['Loc'])}.\n")
    (MEETINGS / "dev.crowded.txt").write_text(crowded)


if __name__ == "__main__":
    main()
