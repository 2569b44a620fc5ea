"""A meeting's context (an invitation, an agenda, an attendee list) read for its names: by the
reader's own entity tagger, sentence by sentence, with capitalised runs beside it
(`streamre.hearing.names.context_names`). Blocking where a reader is given: run it where the
reader runs."""

from __future__ import annotations

from pathlib import Path

from streamre.hearing.names import BadContext, check_context, context_names
from streamre.inference.seam import Reader
from streamre.textre.sentences import split_sentences


def names_in_context(text: str, reader: Reader | None) -> list[str]:
    """The names of a context; with no reader, its capitalised runs alone."""
    sentences = split_sentences(text)
    tagged = [name for found in reader.names(sentences) for name in found] \
        if reader is not None and sentences else []
    return context_names(text, tagged)


def read_context(path: str | Path) -> str:
    """A context file (`--context FILE`), checked as `PUT …/context` checks a body. Raises
    `BadContext` (with the file's name) or OSError."""
    try:
        return check_context(Path(path).read_bytes())
    except BadContext as e:
        raise BadContext(f"{path}: {e}") from None
