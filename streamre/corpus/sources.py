"""Sentences with facts from the two relation-extraction formats the corpus is built from.

SpERT JSON (CoNLL04): a list of {tokens, entities: [{type, start, end}], relations: [{type,
head, tail}]}, token spans end-exclusive. CasRel JSON (WebNLG): a list of {text, triple_list}
over tokenised text. Both become `Sentence`s: readable text (tokens joined the way people write
them), triplets with the same surface strings, and character spans of every entity.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# Penn Treebank escapes and quote tokens, spelled as written text.
# How this project cuts its own text into SpERT tokens: words (with an inner apostrophe) and
# single punctuation marks.
TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
_TOKEN_TEXT = {"-LRB-": "(", "-RRB-": ")", "-LCB-": "{", "-RCB-": "}", "-LSB-": "[",
               "-RSB-": "]", "``": '"', "''": '"', "`": "'"}
_NO_SPACE_BEFORE = {".", ",", ":", ";", "?", "!", ")", "}", "]", "%", "'s", "'S", "n't", "'t",
                    "'re", "'ve", "'ll", "'d", "'m"}
_NO_SPACE_AFTER = {"(", "{", "[", "$"}


class SourceError(ValueError):
    """A source file that cannot be read; the message names the file and the item."""


@dataclass(frozen=True)
class Entity:
    text: str
    start: int  # character offsets into Sentence.text, end-exclusive
    end: int
    type: str | None = None


@dataclass(frozen=True)
class Sentence:
    id: str  # "<source>/<split>/<index>": stable, so file names and seeds are too
    text: str
    triplets: tuple[tuple[str, str, str], ...]
    entities: tuple[Entity, ...] = field(default=())


def detokenize(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join tokens into written text; returns the text and each token's character span.

    Quote marks keep their spaces: TTS does not speak them, and a lone " does not say whether
    it opens or closes."""
    text, spans, glue = "", [], True
    for raw in tokens:
        token = _TOKEN_TEXT.get(raw, raw)
        if text and not glue and token not in _NO_SPACE_BEFORE:
            text += " "
        spans.append((len(text), len(text) + len(token)))
        text += token
        glue = token in _NO_SPACE_AFTER
    return text, spans


def _spert_sentence(item: dict) -> tuple[str, tuple, list[Entity]]:
    text, spans = detokenize(item["tokens"])
    entities = []
    for e in item["entities"]:
        start, end = spans[e["start"]][0], spans[e["end"] - 1][1]
        entities.append(Entity(text[start:end], start, end, e.get("type")))
    triplets = tuple((entities[r["head"]].text, r["type"], entities[r["tail"]].text)
                     for r in item["relations"])
    return text, triplets, entities


def _casrel_sentence(item: dict) -> tuple[str, tuple, list[Entity]]:
    text, _ = detokenize(item["text"].split())
    triplets = tuple((detokenize(h.split())[0], r, detokenize(t.split())[0])
                     for h, r, t in item["triple_list"])
    entities, folded = [], text.casefold()
    for name in dict.fromkeys(part for h, _, t in triplets for part in (h, t)):
        at = folded.find(name.casefold())
        if at >= 0:  # WebNLG facts may name things the sentence only paraphrases
            entities.append(Entity(text[at:at + len(name)], at, at + len(name)))
    return text, triplets, entities


# format: (one item to a sentence's parts, its name in errors, what a malformed item raises)
_FORMATS = {
    "spert": (_spert_sentence, "SpERT", (KeyError, IndexError, TypeError)),
    "casrel": (_casrel_sentence, "CasRel", (KeyError, TypeError, ValueError, AttributeError)),
}


def read_sentences(path: str | Path, fmt: str = "auto") -> list[Sentence]:
    """Read a SpERT or CasRel file; `fmt` "auto" tells them apart by the first item's keys."""
    path = Path(path)
    if fmt != "auto" and fmt not in _FORMATS:
        raise SourceError(f"unknown source format {fmt!r}; choose spert, casrel or auto")
    items = _load_list(path)
    if fmt == "auto":
        if not items:
            raise SourceError(f"{path}: no sentences")
        first = items[0] if isinstance(items[0], dict) else {}
        fmt = "spert" if "tokens" in first else "casrel" if "triple_list" in first else ""
        if not fmt:
            raise SourceError(f"{path}: neither SpERT (tokens, entities, relations) "
                              "nor CasRel (text, triple_list) JSON")
    parse, name, malformed = _FORMATS[fmt]
    source = _source_name(path)
    sentences = []
    for index, item in enumerate(items):
        try:
            text, triplets, entities = parse(item)
        except malformed as e:
            raise SourceError(f"{path}: item {index}: not a {name} sentence "
                              f"({type(e).__name__}: {e})") from None
        sentences.append(Sentence(f"{source}/{index}", text, triplets, tuple(entities)))
    return sentences


def _load_list(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"source not found: {path}") from None
    except ValueError as e:
        raise SourceError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of sentences")
    return data


def _source_name(path: Path) -> str:
    # conll04/conll04_train.json -> conll04/train; webnlg/train_triples.json -> webnlg/train
    split = path.stem.replace(path.parent.name + "_", "").replace("_triples", "")
    return f"{path.parent.name}/{split}"
