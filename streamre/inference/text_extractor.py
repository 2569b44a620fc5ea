"""Triplets from written sentences with a `TextREModel` checkpoint: a chat line, a note, or a
transcript the speech model wrote. Calls are blocking, like the speech extractor's."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import torch

from streamre import MODELS_DIR
from streamre.inference.seam import Reader
from streamre.pretrained import load_pretrained, resolve_folder
from streamre.textre.encoding import EntitySpan, Pieces, decode_tags, encode
from streamre.textre.model import TextREModel
from streamre.triplets import ARTICLES, ENTITY_TYPES, Triplet
from streamre.whisper.devices import pick_device, pick_dtype


DEFAULT_TEXT_MODEL = "streamre-minilm-meetings"


def resolve_text_model(name: str) -> str | None:
    """The text model `serve --text-model` names: '' is the bundled one (None if this copy
    has none), 'none' is no text model; a bare name under models/ is that folder; anything
    else a folder or hub id."""
    if name == "none":
        return None
    if not name:
        return str(MODELS_DIR / DEFAULT_TEXT_MODEL) if (MODELS_DIR / DEFAULT_TEXT_MODEL).is_dir() \
            else None
    return resolve_folder(name)


def load_text_extractor(source: str | Path, device: str = "auto", dtype: str = "auto") -> Reader:
    """The text extractor a folder or hub id holds: a `TextExtractor` (`streamre
    train-text`), or a speech model trained to read text too (`ModelTextExtractor`)."""
    from transformers import PretrainedConfig

    try:
        model_type = PretrainedConfig.get_config_dict(str(source))[0].get("model_type")
    except OSError as e:
        raise FileNotFoundError(f"cannot load text model {str(source)!r}: not a checkpoint "
                                f"folder, and not a hub id that can be fetched from here "
                                f"({e.__class__.__name__})") from None
    if model_type == "streamre-mcam":
        from streamre.model.text import ModelTextExtractor

        return ModelTextExtractor.load(str(source), device, dtype)
    return TextExtractor.load(source, device, dtype)


class TextExtractor:
    """Args:
        model: a `TextREModel`, on its device and in its dtype, in eval mode.
        tokenizer: its fast tokenizer.
        name: what `/healthz` and the logs call it.
    """

    def __init__(self, model: TextREModel, tokenizer, name: str) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.device = str(next(model.parameters()).device)

    @classmethod
    def load(cls, source: str | Path, device: str = "auto", dtype: str = "auto"
             ) -> "TextExtractor":
        """A checkpoint folder or hub id written by `streamre train-text`."""
        from transformers import PreTrainedTokenizerFast

        device = pick_device(device)
        model = load_pretrained(TextREModel, str(source))
        model.to(device=device, dtype=pick_dtype(dtype, device)).eval()
        # Not AutoTokenizer: it would look our model type up among transformers' own.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(source))
        return cls(model, tokenizer, Path(str(source)).name)

    def warmup(self) -> None:
        self.extract(["David Chen works for the World Bank."])

    @torch.inference_mode()
    def extract(self, texts: Sequence[str]) -> list[list[Triplet]]:
        """The triplets of each text, best first; names exactly as the text writes them."""
        if not texts:
            return []
        config = self.model.config
        pieces, mentions, relation_view = self._tagged(texts)
        pairs = [(b, h, t) for b, found in enumerate(mentions)
                 for h, t in itertools.permutations(found, 2)]
        if not pairs:
            return [[] for _ in texts]
        rows = torch.tensor([pair_row(b, h, t) for b, h, t in pairs], device=self.device)
        probabilities = self.model.pair_logits(relation_view, rows).float().softmax(-1)
        best, label = probabilities[:, 1:].max(-1)
        found: list[dict[tuple, Triplet]] = [{} for _ in texts]  # by `Triplet.key`
        for (b, h, t), p, r, none in zip(pairs, best.tolist(), label.tolist(),
                                         probabilities[:, 0].tolist(), strict=True):
            if p <= none or p < config.min_confidence:
                continue
            head, tail = _name(pieces[b], h), _name(pieces[b], t)
            if head and tail:
                triplet = Triplet(head, config.relation_types[r], tail, p,
                                  entity_type(config.entity_types[h.type]),
                                  entity_type(config.entity_types[t.type]))
                kept = found[b].get(triplet.key)
                if kept is None or p > kept.confidence:
                    found[b][triplet.key] = triplet
        return [sorted(f.values(), key=lambda t: -t.confidence) for f in found]

    @torch.inference_mode()
    def names(self, texts: Sequence[str]) -> list[list[str]]:
        """The names the entity tagger finds in each text, each once, in order."""
        if not texts:
            return []
        pieces, mentions, _ = self._tagged(texts)
        found = []
        for p, spans in zip(pieces, mentions, strict=True):
            names = {}
            for span in spans:
                name = _name(p, span)
                if name:
                    names.setdefault(name.casefold(), name)
            found.append(list(names.values()))
        return found

    def _tagged(self, texts: Sequence[str]) -> tuple[list[Pieces], list[list[EntitySpan]],
                                                      torch.Tensor]:
        """Each text's pieces and tagged entity spans, and the relation view for its pairs."""
        pieces = [encode(self.tokenizer, t, self.model.config.max_pieces) for t in texts]
        ids, mask = padded_ids(pieces, self.device)
        entity_view, relation_view = self.model.views(ids, mask)
        tags = self.model.tag_logits(entity_view).argmax(-1).tolist()
        return pieces, [decode_tags(p, t) for p, t in zip(pieces, tags, strict=True)], \
            relation_view


def entity_type(tag: str) -> str:
    """A reader's entity tag as a node type (`ENTITY_TYPES`); a tag of another scheme is
    `other`."""
    return ENTITY_TYPES.get(tag, "other")


def pair_row(batch: int, head: EntitySpan, tail: EntitySpan) -> list[int]:
    """One row of `TextREModel.pair_logits`'s pairs."""
    return [batch, head.first, head.last, head.type, tail.first, tail.last, tail.type]


def padded_ids(pieces: list[Pieces], device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The pieces' ids as one batch, padded with 0 ([PAD]), and the attention mask."""
    longest = max(len(p.ids) for p in pieces)
    ids = torch.zeros(len(pieces), longest, dtype=torch.long)
    mask = torch.zeros(len(pieces), longest, dtype=torch.long)
    for i, p in enumerate(pieces):
        ids[i, :len(p.ids)] = torch.tensor(p.ids)
        mask[i, :len(p.ids)] = 1
    return ids.to(device), mask.to(device)


# Words whose stop is part of the name ("Acme Corp.", "Sacramento, Calif."); other names lose a
# stop tagged with them, which is the sentence's ("lives in Seattle.").
ABBREVIATIONS = {
    "corp", "inc", "co", "ltd", "bros", "jr", "sr", "st", "mt", "ft", "dr", "gen", "col", "sen",
    "rep", "gov", "calif", "ala", "ariz", "ark", "colo", "conn", "del", "fla", "ga", "ill",
    "ind", "kan", "ky", "la", "md", "mass", "mich", "minn", "miss", "mo", "mont", "neb", "nev",
    "okla", "ore", "pa", "tenn", "tex", "va", "vt", "wash", "wis", "wyo", "no", "dept", "univ"}


def _name(pieces: Pieces, mention: EntitySpan) -> str | None:
    return as_name(pieces.text[mention.start:mention.end])


def as_name(text: str) -> str | None:
    """A tagged span as a name; None for what is never one (an article, punctuation)."""
    name = text.strip()
    last = name.rsplit(None, 1)[-1] if name else ""
    if last.endswith(".") and "." not in last[:-1] and last[:-1].casefold() not in ABBREVIATIONS:
        name = name[:-1].rstrip()
    if not any(c.isalnum() for c in name) or name.casefold() in ARTICLES:
        return None
    return name
