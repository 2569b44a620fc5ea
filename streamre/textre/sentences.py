"""Long text (a pasted agenda, a paragraph of notes) cut into sentences, each of which is one
item for the text extractor."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (with closing quotes or brackets) before white space and a
# capital, digit or opening quote; or at a line break. Abbreviations such as "Mr." or "U.S."
# followed by a capitalised name are the usual false cut; the short-piece rule below mends the
# common ones.
_END = re.compile(r"""(?<=[.!?])(["')\]]*)\s+(?=["'(\[]?[A-Z0-9])|\s*\n+\s*""")
_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Ltd|Co|Corp|vs|etc|[A-Z])\.$")


def split_sentences(text: str, max_chars: int = 1000) -> list[str]:
    """The sentences of `text`, stripped, none empty; a sentence longer than `max_chars` is
    cut at the last space before the limit."""
    pieces: list[str] = []
    start = 0
    for match in _END.finditer(text):
        piece = text[start:match.start() + len(match.group(1) or "")].strip()
        if "\n" not in match.group() and _ABBREVIATION.search(piece):
            continue  # "Mr. Smith": not the end of a sentence
        pieces.append(piece)
        start = match.end()
    pieces.append(text[start:].strip())
    return [cut for piece in pieces if piece for cut in _cut(piece, max_chars)]


def _cut(sentence: str, max_chars: int) -> list[str]:
    cuts = []
    while len(sentence) > max_chars:
        at = sentence.rfind(" ", 0, max_chars)
        at = at if at > 0 else max_chars
        cuts.append(sentence[:at].strip())
        sentence = sentence[at:].strip()
    return cuts + ([sentence] if sentence else [])
