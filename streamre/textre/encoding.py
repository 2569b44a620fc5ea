"""Text to word pieces and back: BIO tags from character spans for training, and entity spans
(in characters, so names come out exactly as written) from predicted tags.

Pure functions over a fast tokenizer's ids and offsets; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pieces:
    """A text as the encoder sees it: ids with [CLS] and [SEP], and each piece's character
    span in the text ((0, 0) for the special pieces)."""
    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class EntitySpan:
    """An entity: its character span in the text, its type's index, and its word pieces
    (end exclusive)."""
    start: int
    end: int
    type: int
    first: int
    last: int


def encode(tokenizer, text: str, max_length: int) -> Pieces:
    """Word pieces of `text` (a transformers fast tokenizer), cut at `max_length` pieces."""
    out = tokenizer(text, truncation=True, max_length=max_length,
                    return_offsets_mapping=True, add_special_tokens=True)
    return Pieces(text, list(out["input_ids"]), [tuple(o) for o in out["offset_mapping"]])


def mentions_of(pieces: Pieces, spans: list[tuple[int, int, int]]) -> list[EntitySpan | None]:
    """The word pieces of each (start, end, type) character span; None for a span cut off by
    the length limit or covering no piece."""
    found: list[EntitySpan | None] = []
    for start, end, kind in spans:
        inside = [i for i, (a, b) in enumerate(pieces.offsets)
                  if b > a and a < end and b > start]
        found.append(EntitySpan(start, end, kind, inside[0], inside[-1] + 1) if inside else None)
    return found


def tags_of(pieces: Pieces, mentions: list[EntitySpan | None]) -> list[int]:
    """BIO tag ids (0 is O, 1 + 2t is B of type t, 2 + 2t is I); -100 on special pieces."""
    tags = [0 if b > a else -100 for a, b in pieces.offsets]
    for m in mentions:
        if m is None:
            continue
        tags[m.first] = 1 + 2 * m.type
        for i in range(m.first + 1, m.last):
            tags[i] = 2 + 2 * m.type
    return tags


def decode_tags(pieces: Pieces, tags: list[int]) -> list[EntitySpan]:
    """Entity mentions from BIO tag ids: a mention starts at B (or at an I that does not
    continue one of its type) and runs over the I pieces of its type that follow. Its
    character span runs from its first piece to its last, so a name keeps its inner spaces and
    punctuation as written."""
    found: list[EntitySpan] = []
    current: list[int] | None = None  # [first, last, type]
    # `tags` may run on past the pieces (a padded batch's row).
    for i, ((a, b), tag) in enumerate(zip(pieces.offsets, tags, strict=False)):
        real = b > a
        kind = (tag - 1) // 2 if real and tag > 0 else None
        begins = kind is not None and (tag % 2 == 1 or current is None or current[2] != kind)
        if current is not None and (not real or kind is None or begins):
            found.append(_mention(pieces, *current))
            current = None
        if begins:
            current = [i, i + 1, kind]
        elif current is not None and kind is not None:
            current[1] = i + 1
    if current is not None:
        found.append(_mention(pieces, *current))
    return _whole_words(pieces, found)


def _mention(pieces: Pieces, first: int, last: int, kind: int) -> EntitySpan:
    return EntitySpan(pieces.offsets[first][0], pieces.offsets[last - 1][1], kind, first, last)


def _whole_words(pieces: Pieces, mentions: list[EntitySpan]) -> list[EntitySpan]:
    """Mentions widened to whole words: a tag that stopped inside a word ("Chen" of
    "Chens") takes the rest of it, so a name is never cut."""
    text, widened = pieces.text, []
    for m in mentions:
        start, end = m.start, m.end
        while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
            start -= 1
        while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
            end += 1
        widened.append(EntitySpan(start, end, m.type, m.first, m.last))
    return widened
